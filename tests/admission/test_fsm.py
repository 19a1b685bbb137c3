"""FSM GlobalTrafficPolicy and ServiceExport, on manifests shaped like flomesh-io/fsm's own examples."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from policyengine.admission.extract import ManifestError, extract_crossings, extractors_for, fsm

from .directory import context, eu_only, everywhere, nowhere_else

# flomesh-io/fsm scripts/k3d-multicluster-curl-test.sh, with the cluster keys of the test directory
GTP = yaml.safe_load(
    """
apiVersion: multicluster.flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata:
  name: checkout
  namespace: shop
spec:
  lbType: ActiveActive
  targets:
    - clusterKey: eu-west-1/default/default/eu-2
    - clusterKey: us-east-1/default/default/us-1
"""
)


def applied(manifest: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(manifest), patch)
    return result


def test_gtp_targets_become_routes_from_the_local_cluster() -> None:
    crossings = extract_crossings(GTP, context("eu-1"))
    assert [(c.source, c.destination, c.path) for c in crossings] == [
        ("eu-1", "eu-2", "spec.targets[0].clusterKey"),
        ("eu-1", "us-1", "spec.targets[1].clusterKey"),
    ]
    assert crossings[1].via == "GlobalTrafficPolicy shop/checkout spec.targets[1].clusterKey"
    assert all(c.service == "shop/checkout" and c.known for c in crossings)


def test_gtp_of_the_old_flomesh_io_group_is_read_too() -> None:
    old = {**GTP, "apiVersion": "flomesh.io/v1alpha1"}
    assert extractors_for(old) == (fsm.GLOBAL_TRAFFIC_POLICY,)
    assert len(extract_crossings(old, context())) == 2


def test_gtp_target_that_is_the_local_cluster_is_no_crossing() -> None:
    assert [c.destination for c in extract_crossings(GTP, context("eu-2"))] == ["us-1"]


def test_gtp_rewrite_drops_the_foreign_target() -> None:
    plan = fsm.rewrite_gtp(GTP, context(), eu_only)
    assert plan is not None
    assert applied(GTP, plan.patch)["spec"] == {
        "lbType": "ActiveActive",
        "targets": [{"clusterKey": "eu-west-1/default/default/eu-2"}],
    }
    assert plan.removed == ("removed spec.targets[1] us-east-1/default/default/us-1",)


def test_gtp_rewrite_with_no_target_left_becomes_locality() -> None:
    failover = copy.deepcopy(GTP)
    failover["spec"]["lbType"] = "FailOver"
    plan = fsm.rewrite_gtp(failover, context(), nowhere_else)
    assert plan is not None
    assert applied(failover, plan.patch)["spec"] == {"lbType": "Locality"}


def test_gtp_rewrite_keeps_everything_permitted() -> None:
    plan = fsm.rewrite_gtp(GTP, context(), everywhere)
    assert plan is not None and plan.patch == []


def test_gtp_unknown_cluster_key_is_a_route_to_an_unknown_cluster() -> None:
    unknown = copy.deepcopy(GTP)
    unknown["spec"]["targets"].append({"clusterKey": "default/default/default/cluster-3"})
    crossing = extract_crossings(unknown, context())[-1]
    assert (crossing.destination, crossing.known) == ("default/default/default/cluster-3", False)
    plan = fsm.rewrite_gtp(unknown, context(), eu_only)
    assert plan is not None
    assert [t["clusterKey"] for t in applied(unknown, plan.patch)["spec"]["targets"]] == [
        "eu-west-1/default/default/eu-2"
    ]


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"lbType": "ActiveActive", "targets": "eu-2"}, "spec.targets"),
        ({"lbType": "ActiveActive", "targets": [{"weight": 1}]}, "spec.targets[0].clusterKey"),
        ({"lbType": "RoundRobin"}, "spec.lbType"),
        ({"targets": [{"clusterKey": 7}]}, "spec.targets[0].clusterKey"),
    ],
)
def test_gtp_of_the_wrong_shape_names_the_json_path(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(ManifestError) as caught:
        extract_crossings({**GTP, "spec": spec}, context())
    assert caught.value.path == path
    assert str(caught.value).startswith(f"GlobalTrafficPolicy shop/checkout: {path}: ")


# flomesh-io/fsm scripts/k3d-multicluster-export-services.sh
EXPORT = yaml.safe_load(
    """
apiVersion: multicluster.flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  namespace: shop
  name: checkout
spec:
  serviceAccountName: "*"
  rules:
    - portNumber: 8080
      path: "/eu-1/checkout"
      pathType: Prefix
"""
)


def test_export_with_no_target_clusters_reaches_every_cluster() -> None:
    crossings = extract_crossings(EXPORT, context())
    assert [(c.source, c.destination) for c in crossings] == [
        ("cn-1", "eu-1"),
        ("eu-2", "eu-1"),
        ("us-1", "eu-1"),
    ]
    assert "empty: every cluster" in crossings[0].via


def test_export_rewrite_sets_target_clusters_to_the_permitted_keys() -> None:
    plan = fsm.rewrite_export(EXPORT, context(), eu_only)
    assert plan is not None
    assert applied(EXPORT, plan.patch)["spec"]["targetClusters"] == ["eu-west-1/default/default/eu-2"]
    assert len(plan.removed) == 2


def test_export_rewrite_with_nothing_permitted_is_a_deny() -> None:
    assert fsm.rewrite_export(EXPORT, context(), nowhere_else) is None
    listed = {**EXPORT, "spec": {"targetClusters": ["us-east-1/default/default/us-1"]}}
    assert fsm.rewrite_export(listed, context(), nowhere_else) is None


def test_export_rewrite_removes_listed_foreign_targets() -> None:
    listed = {
        **EXPORT,
        "spec": {"targetClusters": ["us-east-1/default/default/us-1", "eu-west-1/default/default/eu-2"]},
    }
    assert [c.destination for c in extract_crossings(listed, context())] == ["eu-1", "eu-1"]
    plan = fsm.rewrite_export(listed, context(), eu_only)
    assert plan is not None
    assert applied(listed, plan.patch)["spec"]["targetClusters"] == ["eu-west-1/default/default/eu-2"]
