"""Residency tags under the real default policy repo: computed, idempotent, never trusted."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from policyengine.admission.tagging import (
    DATA_CLASSES_ANNOTATION,
    HOME_LABEL,
    REGIMES_ANNOTATION,
    REVISION_ANNOTATION,
    residency_tags,
    tag_patch,
)
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies

POLICIES = default_policies()


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(POLICIES)


def service(name: str, labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if labels is not None:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = {f"residency.policyengine.io/{k.replace('_', '-')}": v for k, v in annotations.items()}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 80}]}}


def tagged(manifest: dict[str, Any], policy: LoadedPolicy) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(manifest), tag_patch(manifest, policy))
    return result


@pytest.mark.parametrize(
    ("name", "regime_label", "home"),
    [("checkout", "gdpr", "EEA"), ("profile", "pipl", "CN"), ("billing", "ccpa", "US-CA")],
)
def test_regulated_services_get_regime_and_home_labels(
    policy: LoadedPolicy, name: str, regime_label: str, home: str
) -> None:
    result = tagged(service(name, {"app": name}), policy)
    assert result["metadata"]["labels"] == {
        "app": name,
        f"residency.policyengine.io/{regime_label}": "true",
        HOME_LABEL: home,
    }
    annotations = result["metadata"]["annotations"]
    assert annotations[REGIMES_ANNOTATION] == regime_label.upper()
    assert annotations[REVISION_ANNOTATION] == policy.revision
    assert annotations[DATA_CLASSES_ANNOTATION].startswith("personal")


def test_tagging_is_idempotent(policy: LoadedPolicy) -> None:
    for manifest in (service("checkout"), service("profile", {"app": "p"}), service("catalog")):
        once = tagged(manifest, policy)
        assert tag_patch(once, policy) == []


def test_unregulated_service_gets_only_the_revision(policy: LoadedPolicy) -> None:
    result = tagged(service("catalog"), policy)
    assert "labels" not in result["metadata"]
    assert result["metadata"]["annotations"] == {REVISION_ANNOTATION: policy.revision}


def test_hand_edited_tags_cannot_opt_out(policy: LoadedPolicy) -> None:
    forged = service(
        "checkout",
        {
            "app": "checkout",
            "residency.policyengine.io/gdpr": "false",
            "residency.policyengine.io/pipl": "true",
        },
        regimes="",
    )
    patch = tag_patch(forged, policy)
    assert {"op": "remove", "path": "/metadata/labels/residency.policyengine.io~1pipl"} in patch
    result = jsonpatch.apply_patch(forged, patch)
    assert result["metadata"]["labels"]["residency.policyengine.io/gdpr"] == "true"
    assert "residency.policyengine.io/pipl" not in result["metadata"]["labels"]
    assert result["metadata"]["annotations"][REGIMES_ANNOTATION] == "GDPR"


def test_regime_that_no_longer_applies_is_removed(policy: LoadedPolicy) -> None:
    old = tagged(service("checkout"), policy)
    old["metadata"]["name"] = "catalog"  # same tags, now on an unregulated service
    result = tagged(old, policy)
    assert "residency.policyengine.io/gdpr" not in result["metadata"].get("labels", {})
    assert HOME_LABEL not in result["metadata"].get("labels", {})
    assert REGIMES_ANNOTATION not in result["metadata"]["annotations"]


def test_annotations_declare_data_for_several_regimes(policy: LoadedPolicy) -> None:
    both = service("orders", data_classes="personal", subjects="EEA,CN")
    tags = residency_tags(both, policy)
    assert tags.labels == {
        "residency.policyengine.io/gdpr": "true",
        "residency.policyengine.io/pipl": "true",
        HOME_LABEL: "CN_EEA",
    }


def test_workloads_and_exports_are_tagged_other_kinds_are_not(policy: LoadedPolicy) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "shop"},
    }
    assert tag_patch(deployment, policy)[0]["path"] == "/metadata/labels"
    export = {
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceExport",
        "metadata": deployment["metadata"],
    }
    assert tag_patch(export, policy) != []
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": deployment["metadata"]}
    assert tag_patch(config, policy) == []
