"""Cilium global services and Linkerd exported services, from the upstream docs' examples."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import yaml

from policyengine.admission.extract import cilium, extract_crossings, extractors_for, linkerd

from .directory import ClusterPermits, context, eu_only, everywhere

# cilium/cilium Documentation/network/clustermesh/affinity.rst
REBEL_BASE = yaml.safe_load(
    """
apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  namespace: shop
  annotations:
     service.cilium.io/global: "true"
     service.cilium.io/affinity: "local"
spec:
  type: ClusterIP
  ports:
  - port: 80
  selector:
    name: rebel-base
"""
)


def applied(manifest: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(manifest), patch)
    return result


def test_service_is_read_by_both_cilium_and_linkerd() -> None:
    assert extractors_for(REBEL_BASE) == (cilium.SERVICE, linkerd.SERVICE)


def test_global_service_routes_to_and_from_every_cluster() -> None:
    crossings = extract_crossings(REBEL_BASE, context("eu-1"))
    assert {(c.source, c.destination) for c in crossings} == {
        (a, b) for other in ("cn-1", "eu-2", "us-1") for a, b in ((other, "eu-1"), ("eu-1", other))
    }
    assert crossings[0].path == 'metadata.annotations["service.cilium.io/shared"]'


def test_not_shared_global_service_only_uses_remote_backends() -> None:
    shared_off = copy.deepcopy(REBEL_BASE)
    shared_off["metadata"]["annotations"]["service.cilium.io/shared"] = "false"
    assert {c.source for c in extract_crossings(shared_off, context())} == {"eu-1"}


def test_rewrite_sets_shared_false_and_global_false_with_escaped_keys() -> None:
    plan = cilium.rewrite(REBEL_BASE, context(), eu_only)
    assert plan is not None
    assert plan.patch == [
        {"op": "add", "path": "/metadata/annotations/service.cilium.io~1shared", "value": "false"},
        {"op": "replace", "path": "/metadata/annotations/service.cilium.io~1global", "value": "false"},
    ]
    annotations = applied(REBEL_BASE, plan.patch)["metadata"]["annotations"]
    assert annotations == {
        "service.cilium.io/global": "false",
        "service.cilium.io/affinity": "local",
        "service.cilium.io/shared": "false",
    }
    assert extract_crossings(applied(REBEL_BASE, plan.patch), context()) == []


def test_not_shared_service_is_rewritten_to_global_false_only() -> None:
    shared_off = copy.deepcopy(REBEL_BASE)
    shared_off["metadata"]["annotations"]["service.cilium.io/shared"] = "false"
    plan = cilium.rewrite(shared_off, context(), eu_only)
    assert plan is not None
    assert plan.patch == [
        {"op": "replace", "path": "/metadata/annotations/service.cilium.io~1global", "value": "false"}
    ]
    assert plan.removed == ("service.cilium.io/global=false: no remote backends in cn-1, us-1",)
    assert cilium.rewrite(REBEL_BASE, context(), everywhere) == cilium.RewritePlan()


def test_plain_service_is_not_global() -> None:
    plain = copy.deepcopy(REBEL_BASE)
    plain["metadata"]["annotations"]["service.cilium.io/global"] = "false"
    assert extract_crossings(plain, context()) == []
    del plain["metadata"]["annotations"]
    assert extract_crossings(plain, context()) == []


# linkerd/website linkerd.io/content/2-edge/reference/multicluster.md
def linkerd_service(value: str, label: str = linkerd.EXPORTED) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "profile", "namespace": "shop", "labels": {"app": "profile", label: value}},
        "spec": {"ports": [{"port": 8080}]},
    }


def test_exported_service_is_reached_from_every_other_cluster() -> None:
    for value in ("true", "remote-discovery"):
        crossings = extract_crossings(linkerd_service(value), context("cn-1"))
        assert [(c.source, c.destination) for c in crossings] == [
            ("eu-1", "cn-1"),
            ("eu-2", "cn-1"),
            ("us-1", "cn-1"),
        ]
    assert len(extract_crossings(linkerd_service("member", linkerd.FEDERATED), context("cn-1"))) == 3
    assert extract_crossings(linkerd_service("false"), context("cn-1")) == []


def test_linkerd_rewrite_removes_the_label() -> None:
    service = linkerd_service("true")
    plan = linkerd.rewrite(service, context("cn-1"), ClusterPermits(frozenset()))
    assert plan is not None
    assert plan.patch == [{"op": "remove", "path": "/metadata/labels/mirror.linkerd.io~1exported"}]
    assert applied(service, plan.patch)["metadata"]["labels"] == {"app": "profile"}
    assert linkerd.rewrite(service, context("cn-1"), everywhere) == linkerd.RewritePlan()
