"""Gateway API HTTPRoute/GRPCRoute with ServiceImport backends (GEP-1748) and MCS ServiceExport."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from policyengine.admission.extract import ROUTE, ManifestError, RewritePlan, extract_crossings, extractors_for, mcs

from .directory import ClusterPermits, context, eu_only, everywhere

# kubernetes-sigs/gateway-api examples/standard/multicluster/httproute-hybrid.yaml, in namespace shop
HYBRID = yaml.safe_load(
    """
kind: HTTPRoute
apiVersion: gateway.networking.k8s.io/v1
metadata:
  name: store
  namespace: shop
spec:
  parentRefs:
  - name: external-http
  rules:
  - backendRefs:
    - kind: Service
      name: checkout
      port: 8080
      weight: 90
    - group: multicluster.x-k8s.io
      kind: ServiceImport
      name: checkout
      port: 8080
      weight: 10
"""
)

# examples/standard/multicluster/httproute-location.yaml (region-scoped imports)
LOCATION = yaml.safe_load(
    """
kind: HTTPRoute
apiVersion: gateway.networking.k8s.io/v1
metadata: {name: store, namespace: shop}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /west}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: catalog, port: 8080}]
  - backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: checkout, port: 8080}]
"""
)


def applied(manifest: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(manifest), patch)
    return result


def test_service_import_backend_routes_to_every_cluster_running_the_service() -> None:
    crossings = extract_crossings(HYBRID, context("eu-1"))
    assert [(c.service, c.source, c.destination) for c in crossings] == [
        ("shop/checkout", "eu-1", "eu-2"),
        ("shop/checkout", "eu-1", "us-1"),
    ]
    assert crossings[0].via == "HTTPRoute shop/store spec.rules[0].backendRefs[1] (ServiceImport shop/checkout)"


def test_unknown_service_import_routes_to_every_known_cluster() -> None:
    route = copy.deepcopy(HYBRID)
    route["spec"]["rules"][0]["backendRefs"][1].update(name="ledger", namespace="bank")
    crossings = extract_crossings(route, context())
    assert {c.service for c in crossings} == {"bank/ledger"}
    assert [c.destination for c in crossings] == ["cn-1", "eu-2", "us-1"]


def test_plain_service_backends_are_local_and_create_no_route() -> None:
    local = copy.deepcopy(HYBRID)
    del local["spec"]["rules"][0]["backendRefs"][1]
    assert extract_crossings(local, context()) == []


def test_rewrite_replaces_the_service_import_by_the_local_service() -> None:
    plan = ROUTE.rewrite(HYBRID, context(), eu_only)
    assert plan is not None
    refs = applied(HYBRID, plan.patch)["spec"]["rules"][0]["backendRefs"]
    assert refs == [
        {"kind": "Service", "name": "checkout", "port": 8080, "weight": 90},
        {"kind": "Service", "name": "checkout", "port": 8080, "weight": 10},
    ]
    assert "local Service checkout in eu-1" in plan.removed[0]


def test_rewrite_drops_the_import_when_the_local_cluster_is_not_permitted() -> None:
    plan = ROUTE.rewrite(HYBRID, context(), ClusterPermits(frozenset({"eu-2"})))
    assert plan is not None
    assert applied(HYBRID, plan.patch)["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "checkout", "port": 8080, "weight": 90}
    ]


def test_rewrite_leaving_a_rule_without_backends_is_a_deny() -> None:
    assert ROUTE.rewrite(LOCATION, context("cn-1"), ClusterPermits(frozenset())) is None


def test_rewrite_only_touches_refused_services() -> None:
    class CheckoutEuOnly(ClusterPermits):
        def __call__(self, service: str, cluster: str) -> bool:
            return service == "shop/catalog" or eu_only(service, cluster)

    checkout_eu_only = CheckoutEuOnly(None)
    plan = ROUTE.rewrite(LOCATION, context(), checkout_eu_only)
    assert plan is not None
    rules = applied(LOCATION, plan.patch)["spec"]["rules"]
    assert rules[0]["backendRefs"][0]["kind"] == "ServiceImport"
    assert rules[1]["backendRefs"] == [{"kind": "Service", "name": "checkout", "port": 8080}]
    assert ROUTE.rewrite(LOCATION, context(), everywhere) == RewritePlan()


def test_grpc_route_is_read_like_http_route() -> None:
    grpc = {**HYBRID, "kind": "GRPCRoute"}
    assert extractors_for(grpc) == (ROUTE,)
    assert len(extract_crossings(grpc, context())) == 2


def test_backend_refs_of_the_wrong_shape_name_the_path() -> None:
    bad = copy.deepcopy(HYBRID)
    bad["spec"]["rules"][0]["backendRefs"] = {"name": "checkout"}
    with pytest.raises(ManifestError, match=r"spec\.rules\[0\]\.backendRefs: must be a list, got a mapping"):
        extract_crossings(bad, context())


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ({"port": 80}, r"backendRefs\[1\]\.name: is required"),
        ({"name": ""}, r"backendRefs\[1\]\.name: is required"),
        ({"name": 5}, r"backendRefs\[1\]\.name: must be a string, got an integer"),
        ({"name": "x", "kind": 1}, r"backendRefs\[1\]\.kind: must be a string"),
        ({"name": "x", "group": []}, r"backendRefs\[1\]\.group: must be a string, got a list"),
        ({"name": "x", "namespace": {}}, r"backendRefs\[1\]\.namespace: must be a string, got a mapping"),
        ("checkout", r"backendRefs\[1\]: must be a mapping, got a string"),
    ],
)
def test_each_backend_ref_field_of_the_wrong_shape_names_its_path(ref: Any, problem: str) -> None:
    """Well-formed refs take a shortcut past the shape checks: a ref beside them that is not well formed is
    still refused with the path and the field that is wrong."""
    bad = copy.deepcopy(HYBRID)
    bad["spec"]["rules"][0]["backendRefs"].insert(1, ref)
    with pytest.raises(ManifestError, match=problem):
        extract_crossings(bad, context())
    good = copy.deepcopy(HYBRID)
    good["spec"]["rules"][0]["backendRefs"].insert(1, {"name": "x", "namespace": None, "kind": "Service"})
    extract_crossings(good, context())


# cilium/cilium Documentation/network/clustermesh/mcsapi.rst, and mcs-api v1beta1
@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_mcs_export_reaches_every_other_cluster_and_cannot_be_rewritten(version: str) -> None:
    export = {
        "apiVersion": f"multicluster.x-k8s.io/{version}",
        "kind": "ServiceExport",
        "metadata": {"name": "checkout", "namespace": "shop"},
    }
    assert extractors_for(export) == (mcs.SERVICE_EXPORT,)
    crossings = extract_crossings(export, context("eu-1"))
    assert [(c.source, c.destination) for c in crossings] == [
        ("cn-1", "eu-1"),
        ("eu-2", "eu-1"),
        ("us-1", "eu-1"),
    ]
    assert mcs.SERVICE_EXPORT.rewrite is None
    assert "region-scoped" in mcs.SERVICE_EXPORT.deny_remedy


def test_unknown_kinds_have_no_extractor() -> None:
    assert extractors_for({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}) == ()
    assert extractors_for({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImportStatus"}) == ()
