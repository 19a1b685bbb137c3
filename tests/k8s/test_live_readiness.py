"""`/readyz`'s inventory entry: not ready, and saying why, until the first sync (API server double)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webhook.harness import wait_for

from k8s import objects
from k8s.apiserver import ApiServerDouble
from policyengine.api.live import LiveCluster
from policyengine.k8s import kinds
from policyengine.k8s.client import connect
from policyengine.k8s.inventory import Backoff, Inventory


def test_not_ready_until_the_first_sync(apiserver: ApiServerDouble, kubeconfig_of: Callable[..., Path]) -> None:
    apiserver.put(objects.namespace("shop"))
    apiserver.fail_next(10_000, 503, "/api/v1/namespaces")  # the list fails until the test lets it pass
    api = connect(kubeconfig_of(**{"eu-1": apiserver}), "eu-1").api
    inventory = Inventory(api, "eu-1", backoff=Backoff(0.02, 0.1), watched=(kinds.NAMESPACE, kinds.NODE)).start()
    live = LiveCluster(inventory, "eu-1")
    try:
        assert wait_for(lambda: len(inventory.delays) >= 2)
        entry = live.check(None)
        assert entry["ok"] is False and "waiting for the inventory's first sync" in entry["detail"]
        assert not inventory.current().synced
        apiserver.clear_failures()
        assert wait_for(lambda: live.check(None)["ok"])
        assert live.check(None)["detail"].startswith("synced: 1 objects")
    finally:
        live.stop()
