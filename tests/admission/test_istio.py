"""Istio DestinationRule locality settings and ServiceEntry endpoints, from istio.io's own examples."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from policyengine.admission.extract import ManifestError, extract_crossings, istio, istio_routing

from .directory import ClusterPermits, context, eu_only, everywhere

# istio.io tasks/traffic-management/locality-load-balancing/distribute, with the test localities
DISTRIBUTE = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: checkout
  namespace: shop
spec:
  host: checkout.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
        - from: eu-central-1/*
          to:
            "eu-central-1/*": 70
            "eu-west-1/*": 20
            "us-east-1/*": 10
    outlierDetection:
      consecutive5xxErrors: 100
      interval: 1s
      baseEjectionTime: 1m
"""
)

# istio.io tasks/.../locality-load-balancing/failover
FAILOVER = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: checkout
  namespace: shop
spec:
  host: checkout.shop.svc.cluster.local
  trafficPolicy:
    connectionPool:
      http:
        maxRequestsPerConnection: 1
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover:
          - from: eu-central-1
            to: us-east-1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 10m
"""
)

# istio.io blog/2021/external-locality-failover
SERVICE_ENTRY = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
 name: external-svc-dns
 namespace: shop
spec:
 hosts:
 - mydb.com
 location: MESH_EXTERNAL
 ports:
 - number: 80
   name: http
   protocol: HTTP
 resolution: DNS
 endpoints:
 - address: dynamodb.eu-west-1.amazonaws.com
   locality: eu-west-1
   ports:
     http: 80
 - address: dynamodb.us-east-1.amazonaws.com
   locality: us-east-1
   ports:
     http: 80
"""
)


def applied(manifest: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(manifest), patch)
    return result


def test_distribute_routes_to_every_listed_locality_but_the_local_one() -> None:
    crossings = extract_crossings(DISTRIBUTE, context("eu-1"))
    assert [(c.service, c.destination) for c in crossings] == [
        ("shop/checkout", "eu-2"),
        ("shop/checkout", "us-1"),
    ]
    assert crossings[1].path == ('spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to["us-east-1/*"]')


def test_distribute_rewrite_keeps_permitted_localities_and_scales_to_100() -> None:
    plan = istio.rewrite_destination_rule(DISTRIBUTE, context(), eu_only)
    assert plan is not None
    setting = applied(DISTRIBUTE, plan.patch)["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]
    assert setting["distribute"] == [{"from": "eu-central-1/*", "to": {"eu-central-1/*": 78, "eu-west-1/*": 22}}]
    assert any("us-east-1/*" in line for line in plan.removed)


def test_distribute_with_nothing_permitted_is_a_deny() -> None:
    only_us = copy.deepcopy(DISTRIBUTE)
    only_us["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"][0]["to"] = {"us-east-1/*": 100}
    assert istio.rewrite_destination_rule(only_us, context(), eu_only) is None


def test_failover_is_a_route_and_its_rewrite_is_a_local_distribute() -> None:
    crossings = extract_crossings(FAILOVER, context())
    assert [c.destination for c in crossings] == ["us-1"]
    plan = istio.rewrite_destination_rule(FAILOVER, context(), eu_only)
    assert plan is not None
    lb = applied(FAILOVER, plan.patch)["spec"]["trafficPolicy"]["loadBalancer"]
    assert lb == {
        "simple": "ROUND_ROBIN",
        "localityLbSetting": {
            "enabled": True,
            "distribute": [{"from": "eu-central-1/*", "to": {"eu-central-1/*": 100}}],
        },
    }
    assert "failover is a preference" in plan.removed[0]


def test_failover_priority_reaches_every_cluster_running_the_service() -> None:
    prio = copy.deepcopy(FAILOVER)
    setting = prio["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]
    del setting["failover"]
    setting["failoverPriority"] = ["topology.istio.io/network", "topology.kubernetes.io/region"]
    assert [c.destination for c in extract_crossings(prio, context())] == ["eu-2", "us-1"]


def test_port_level_and_disabled_settings() -> None:
    port_level = copy.deepcopy(FAILOVER)
    lb = port_level["spec"]["trafficPolicy"].pop("loadBalancer")
    port_level["spec"]["trafficPolicy"]["portLevelSettings"] = [{"port": {"number": 80}, "loadBalancer": lb}]
    crossing = extract_crossings(port_level, context())[0]
    assert crossing.path == "spec.trafficPolicy.portLevelSettings[0].loadBalancer.localityLbSetting.failover[0].to"
    plan = istio.rewrite_destination_rule(port_level, context(), eu_only)
    assert plan is not None
    new = applied(port_level, plan.patch)["spec"]["trafficPolicy"]["portLevelSettings"][0]["loadBalancer"]
    assert "failover" not in new["localityLbSetting"]
    lb["localityLbSetting"]["enabled"] = False
    assert extract_crossings(port_level, context()) == []


def test_unknown_locality_is_a_route_to_an_unknown_destination() -> None:
    unknown = copy.deepcopy(FAILOVER)
    unknown["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["failover"][0]["to"] = "ap-south-9"
    crossing = extract_crossings(unknown, context())[0]
    assert (crossing.destination, crossing.known) == ("ap-south-9", False)


def test_host_names_resolve_to_services() -> None:
    ctx = context()
    assert istio.service_for_host(DISTRIBUTE, ctx, "checkout") == "shop/checkout"
    assert istio.service_for_host(DISTRIBUTE, ctx, "billing.pay.svc.cluster.local") == "pay/billing"
    assert istio.service_for_host(DISTRIBUTE, ctx, "checkout.shop.svc.clusterset.local") == "shop/checkout"


def test_service_entry_endpoints_are_routes_by_locality() -> None:
    crossings = extract_crossings(SERVICE_ENTRY, context("eu-1"))
    assert [(c.service, c.destination, c.path) for c in crossings] == [
        ("shop/external-svc-dns", "eu-2", "spec.endpoints[0].locality"),
        ("shop/external-svc-dns", "us-1", "spec.endpoints[1].locality"),
    ]


def test_service_entry_rewrite_drops_foreign_endpoints() -> None:
    plan = istio_routing.rewrite_service_entry(SERVICE_ENTRY, context(), eu_only)
    assert plan is not None
    endpoints = applied(SERVICE_ENTRY, plan.patch)["spec"]["endpoints"]
    assert [e["address"] for e in endpoints] == ["dynamodb.eu-west-1.amazonaws.com"]
    assert istio_routing.rewrite_service_entry(SERVICE_ENTRY, context(), ClusterPermits(frozenset())) is None
    assert istio_routing.rewrite_service_entry(SERVICE_ENTRY, context(), everywhere) == istio.RewritePlan()


def test_service_entry_endpoint_without_locality_is_placed_only_by_a_service_host() -> None:
    """An address alone is not a cluster: only a known service's host says where it is."""
    entry = copy.deepcopy(SERVICE_ENTRY)
    entry["spec"]["endpoints"] = [{"address": "checkout.shop.svc.clusterset.local"}, {"address": "10.9.8.7"}]
    crossings = extract_crossings(entry, context("eu-1"))
    assert [(c.destination, c.known) for c in crossings] == [("eu-2", True), ("us-1", True)]
    (note,) = istio_routing.SERVICE_ENTRY.notes(entry, context("eu-1"))  # type: ignore[misc]
    assert "10.9.8.7 is not a cluster of the set" in note


def test_service_entry_of_the_wrong_shape() -> None:
    with pytest.raises(ManifestError) as caught:
        extract_crossings({**SERVICE_ENTRY, "spec": {"endpoints": [{"locality": ["eu"]}]}}, context())
    assert caught.value.path == "spec.endpoints[0].locality"


def test_distribute_weight_of_the_wrong_shape() -> None:
    bad = copy.deepcopy(DISTRIBUTE)
    bad["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"][0]["to"]["us-east-1/*"] = "10%"
    with pytest.raises(ManifestError) as caught:
        extract_crossings(bad, context())
    assert caught.value.path.endswith('distribute[0].to["us-east-1/*"]')
