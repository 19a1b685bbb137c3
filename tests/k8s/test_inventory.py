"""The inventory (list + watch through the real `kubernetes` client) against the API server double."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from webhook.harness import wait_for

from k8s import objects
from k8s.apiserver import ApiServerDouble
from policyengine.k8s import kinds
from policyengine.k8s.client import connect
from policyengine.k8s.inventory import Backoff, Inventory

FAST = Backoff(base=0.05, cap=0.4)


@pytest.fixture
def start(apiserver: ApiServerDouble, kubeconfig_of: Callable[..., Path]) -> Iterator[Callable[..., Inventory]]:
    started: list[Inventory] = []

    def run(**kwargs: object) -> Inventory:
        api = connect(kubeconfig_of(**{"eu-1": apiserver}), "eu-1").api
        inventory = Inventory(api, "eu-1", backoff=FAST, **kwargs).start()  # type: ignore[arg-type]
        started.append(inventory)
        assert inventory.wait_synced(60), "the inventory never synced"
        return inventory

    yield run
    for inventory in started:
        inventory.stop()


def seed(apiserver: ApiServerDouble) -> None:
    apiserver.put_many([
        objects.namespace("shop", **{"data-classification": "personal"}),
        objects.namespace("tools"),
        objects.node("node-a", "eu-central-1"),
        objects.node("node-b", "eu-central-1"),
        objects.service("shop", "checkout", {"residency.policyengine.io/regimes": "gdpr",
                                             "service.cilium.io/global": "true", "unrelated": "x"}),
        objects.service_import("shop", "checkout", "eu-1", "eu-2"),
        objects.endpoint_slice("shop", "checkout-eu-3", "checkout", "eu-3"),
    ])  # fmt: skip


def test_first_sync_observes_labels_placement_and_regions(
    apiserver: ApiServerDouble, start: Callable[..., Inventory]
) -> None:
    seed(apiserver)
    inventory = start()
    seen = inventory.current()
    assert seen.synced
    assert seen.labels_of("shop") == {"data-classification": "personal"}
    assert seen.clusters_of("shop/checkout") == {"eu-1", "eu-2", "eu-3"}
    assert seen.node_regions == {"eu-1": frozenset({"eu-central-1"})}
    snapshot = inventory.snapshot()
    assert snapshot.counts["Namespace"] == 2 and snapshot.counts["Node"] == 2
    assert "ServiceImport.flomesh.io" in snapshot.missing  # no FSM CRDs in the double: skipped, still synced
    service = snapshot.records["Service"]["shop/checkout"]
    assert service.residency == {"residency.policyengine.io/regimes": "gdpr"}  # type: ignore[union-attr]
    assert service.markers == {"service.cilium.io/global": "true"}  # type: ignore[union-attr]


def test_a_namespace_label_change_is_seen(apiserver: ApiServerDouble, start: Callable[..., Inventory]) -> None:
    seed(apiserver)
    inventory = start()
    assert inventory.current().labels_of("tools") == {}
    apiserver.put(objects.namespace("tools", **{"data-classification": "personal"}))
    assert wait_for(lambda: inventory.current().labels_of("tools") == {"data-classification": "personal"})
    apiserver.remove("Namespace", "", "tools")
    assert wait_for(lambda: "tools" not in inventory.current().namespace_labels)


def test_a_dropped_watch_is_resumed_and_misses_nothing(
    apiserver: ApiServerDouble, start: Callable[..., Inventory]
) -> None:
    seed(apiserver)
    inventory = start()
    lists = inventory.lists["ServiceImport.multicluster.x-k8s.io"]
    # The first watch must be open before it is dropped (the sync ends with the list, the watch follows).
    assert wait_for(lambda: apiserver.count("GET", "/serviceimports", watch=True) >= 1)
    apiserver.drop_watches()
    apiserver.put(objects.service_import("shop", "checkout", "eu-1", "us-1"))
    assert wait_for(lambda: inventory.current().clusters_of("shop/checkout") == {"eu-1", "us-1", "eu-3"})
    # Resumed from the last version seen: no second list was needed.
    assert inventory.lists["ServiceImport.multicluster.x-k8s.io"] == lists
    assert wait_for(lambda: apiserver.count("GET", "/serviceimports", watch=True) >= 2)


def test_an_expired_version_lists_again_and_misses_nothing(
    apiserver: ApiServerDouble, start: Callable[..., Inventory]
) -> None:
    seed(apiserver)
    inventory = start()
    lists = inventory.lists["Namespace"]
    apiserver.drop_watches()
    # Changes made while no watch is open, then the history they are in expires: only a list shows them.
    apiserver.put(objects.namespace("billing", team="payments"))
    apiserver.remove("Namespace", "", "tools")
    apiserver.expire()
    assert wait_for(lambda: inventory.lists["Namespace"] > lists)
    assert wait_for(lambda: set(inventory.current().namespace_labels) == {"shop", "billing"})
    assert inventory.current().labels_of("billing") == {"team": "payments"}
    apiserver.put(objects.namespace("later"))  # and the watch after the re-list goes on
    assert wait_for(lambda: "later" in inventory.current().namespace_labels)


def test_errors_back_off_exponentially_then_sync(apiserver: ApiServerDouble, start: Callable[..., Inventory]) -> None:
    seed(apiserver)
    apiserver.fail_next(4, 500, "/api/v1/namespaces")
    inventory = start(watched=(kinds.NAMESPACE,))
    assert inventory.current().labels_of("shop") == {"data-classification": "personal"}
    assert len(inventory.delays) == 4
    # Each wait is in [d/2, d] with d doubling: never shorter than the one before.
    assert all(later >= earlier for earlier, later in zip(inventory.delays, inventory.delays[1:], strict=False))
    assert inventory.delays[-1] > inventory.delays[0]


def test_a_missing_crd_is_logged_once(
    apiserver: ApiServerDouble, start: Callable[..., Inventory], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="policyengine.inventory")
    inventory = start(watched=(kinds.NAMESPACE, kinds.FSM_SERVICE_IMPORTS[0]), missing_retry_seconds=0.05)
    assert wait_for(lambda: apiserver.count("GET", "/apis", watch=False) >= 6)
    logged = [r for r in caplog.records if "ServiceImport.flomesh.io is not served" in r.getMessage()]
    assert len(logged) == 1
    assert inventory.snapshot().synced
