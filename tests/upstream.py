"""Is an object valid for the API server and the controller that owns its kind? (tests only)

What the API server checks of a custom resource is its CRD's structural schema (with defaults applied
first) and its CEL rules (`x-kubernetes-validations`); some projects check more in their own admission
webhook. `problems(obj)` returns every violation of:

- the schema fixture of the object's group/kind/version (tests/fixtures/crossings/schemas: each
  derived from the upstream CRD named in its `source`, with the fields no rewrite touches removed),
  validated with `jsonschema` after the schema's defaults are applied as the API server applies them;
- every CEL rule of the kept fields, evaluated by a real CEL interpreter (`cel-python`) on the node it
  is attached to, as `self`;
- the checks upstream does in code rather than in the CRD: istiod's locality-LB validation (weights in
  [1, 100] summing to 100 per `distribute` entry, localities with one trailing `*` and no empty part,
  no overlapping localities, failover `from` != `to` and no `*` in `to`; only one of
  distribute/failover, of localityLbSetting/zoneAwareLbSetting), a VirtualService route with at least
  one destination, FSM's GlobalTrafficPolicy webhook (`Locality` with at most one target, `FailOver`
  with at least one, weights >= 0), an SMI TrafficSplit with a backend;
- core kinds (v1 Service): the Kubernetes 1.32 OpenAPI schema through `kubernetes-validate`, strict.

A kind with no schema here is an error, so a new rewrite cannot go unchecked.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "crossings" / "schemas"
K8S_VERSION = "1.32"

# (group, kind, version) -> schema fixture; versions with the same fields share one (see each source).
FIXTURES: dict[tuple[str, str, str], str] = {}
for _version in ("v1", "v1beta1"):
    FIXTURES[("gateway.networking.k8s.io", "HTTPRoute", _version)] = "gateway-httproute-v1.yaml"
FIXTURES[("gateway.networking.k8s.io", "GRPCRoute", "v1")] = "gateway-grpcroute-v1.yaml"
for _kind in ("TLSRoute", "TCPRoute", "UDPRoute"):
    FIXTURES[("gateway.networking.k8s.io", _kind, "v1")] = f"gateway-{_kind.lower()}-v1.yaml"
    FIXTURES[("gateway.networking.k8s.io", _kind, "v1alpha2")] = f"gateway-{_kind.lower()}-v1alpha2.yaml"
FIXTURES[("gateway.networking.k8s.io", "TLSRoute", "v1alpha3")] = "gateway-tlsroute-v1alpha2.yaml"
for _version in ("v1alpha1", "v1beta1", "v1beta2", "v1beta3"):
    FIXTURES[("policy.linkerd.io", "HTTPRoute", _version)] = "linkerd-httproute-v1beta3.yaml"
FIXTURES[("split.smi-spec.io", "TrafficSplit", "v1alpha1")] = "smi-trafficsplit-v1alpha1.yaml"
FIXTURES[("split.smi-spec.io", "TrafficSplit", "v1alpha2")] = "smi-trafficsplit-v1alpha2.yaml"
FIXTURES[("split.smi-spec.io", "TrafficSplit", "v1alpha3")] = "smi-trafficsplit-v1alpha4.yaml"
FIXTURES[("split.smi-spec.io", "TrafficSplit", "v1alpha4")] = "smi-trafficsplit-v1alpha4.yaml"
for _group in ("multicluster.flomesh.io", "flomesh.io"):
    FIXTURES[(_group, "GlobalTrafficPolicy", "v1alpha1")] = "fsm-globaltrafficpolicy-v1alpha1.yaml"
    FIXTURES[(_group, "ServiceExport", "v1alpha1")] = "fsm-serviceexport-v1alpha1.yaml"
for _version in ("v1", "v1beta1", "v1alpha3"):
    FIXTURES[("networking.istio.io", "DestinationRule", _version)] = "istio-destinationrule-v1.yaml"
    FIXTURES[("networking.istio.io", "ServiceEntry", _version)] = "istio-serviceentry-v1.yaml"
    FIXTURES[("networking.istio.io", "VirtualService", _version)] = "istio-virtualservice-v1.yaml"
CORE = {("", "Service", "v1")}


@functools.cache
def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SCHEMAS / name).read_text())
    return doc


def _gvk(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return group, str(obj.get("kind", "")), version


def with_defaults(node: Any, schema: Mapping[str, Any]) -> Any:
    """`node` with the schema's `default`s filled in, as the API server defaults a custom resource."""
    if isinstance(node, dict):
        out = dict(node)
        for key, sub in (schema.get("properties") or {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = with_defaults(out[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in out:
                if key not in (schema.get("properties") or {}):
                    out[key] = with_defaults(out[key], extra)
        return out
    if isinstance(node, list) and isinstance(schema.get("items"), Mapping):
        return [with_defaults(item, schema["items"]) for item in node]
    return node


def _rules(node: Any, schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Any, Mapping[str, Any]]]:
    """(path, value, rule) for every CEL rule of the schema on the value it is attached to."""
    for rule in schema.get("x-kubernetes-validations") or ():
        yield path, node, rule
    if isinstance(node, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in node:
                yield from _rules(node[key], sub, f"{path}.{key}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, value in node.items():
                if key not in (schema.get("properties") or {}):
                    yield from _rules(value, extra, f"{path}[{key!r}]")
    elif isinstance(node, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(node):
            yield from _rules(item, schema["items"], f"{path}[{i}]")


@functools.cache
def _program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def cel_problems(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    out = []
    for path, value, rule in _rules(obj, schema, ""):
        result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            out.append(f"{path or '.'}: CEL {rule.get('message') or rule['rule']}")
    return out


def schema_problems(obj: Mapping[str, Any]) -> list[str]:
    key = _gvk(obj)
    if key in CORE:
        try:
            kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [f"Kubernetes {K8S_VERSION} schema: {exc}"]
        return []
    if key not in FIXTURES:
        return [f"no upstream schema fixture for {key}: add one to tests/fixtures/crossings/schemas"]
    schema = fixture(FIXTURES[key])["schema"]
    defaulted = with_defaults(dict(obj), schema)
    validator = jsonschema.Draft7Validator(schema)
    out = [f"{'.'.join(str(p) for p in e.absolute_path) or '.'}: {e.message}" for e in validator.iter_errors(defaulted)]
    return out + cel_problems(defaulted, schema)


def _locality_problems(localities: list[str], where: str) -> list[str]:
    """istiod's validateLocalities: one trailing `*`, no empty part, no overlap."""
    out = []
    seen: list[list[str]] = []
    for locality in localities:
        if locality.count("*") > 1 or ("*" in locality and not locality.endswith("*")):
            out.append(f"{where}: locality {locality} wildcard '*' number can not exceed 1 and must be in the end")
        parts = locality.split("/", 2)
        if any(p == "" for p in parts):
            out.append(f"{where}: locality {locality} must not contain empty region/zone/subzone info")
        for other in seen:
            common = min(len(other), len(parts))
            if all(a == b or a == "*" or b == "*" for a, b in zip(other[:common], parts[:common], strict=True)):
                out.append(f"{where}: locality {locality} overlap with previous specified ones")
        seen.append(parts)
    return out


def _lb_settings(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = obj.get("spec") or {}
    policies = [("spec.trafficPolicy", spec.get("trafficPolicy") or {})]
    policies += [
        (f"spec.subsets[{i}].trafficPolicy", s.get("trafficPolicy") or {})
        for i, s in enumerate(spec.get("subsets") or [])
    ]
    for where, policy in policies:
        holders = [(where, policy)] + [
            (f"{where}.portLevelSettings[{i}]", p) for i, p in enumerate(policy.get("portLevelSettings") or [])
        ]
        for hwhere, holder in holders:
            lb = holder.get("loadBalancer") or {}
            if lb:
                yield f"{hwhere}.loadBalancer", lb


def istio_problems(obj: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if obj.get("kind") == "DestinationRule":
        for where, lb in _lb_settings(obj):
            if "localityLbSetting" in lb and "zoneAwareLbSetting" in lb:
                out.append(f"{where}: only one of localityLbSetting and zoneAwareLbSetting can be set")
            setting = lb.get("localityLbSetting") or {}
            distribute, failover = setting.get("distribute") or [], setting.get("failover") or []
            if distribute and failover:
                out.append(f"{where}: can not simultaneously specify 'distribute' and 'failover'")
            for d, entry in enumerate(distribute):
                to = entry.get("to") or {}
                if any(not 1 <= w <= 100 for w in to.values()):
                    out.append(f"{where}.distribute[{d}]: locality weight must be in range [1, 100]")
                if sum(to.values()) != 100:
                    out.append(f"{where}.distribute[{d}]: total locality weight {sum(to.values())} != 100")
                out += _locality_problems(list(to), f"{where}.distribute[{d}].to")
            out += _locality_problems([e.get("from", "") for e in distribute], f"{where}.distribute[].from")
            for f, entry in enumerate(failover):
                if entry.get("from") == entry.get("to"):
                    out.append(f"{where}.failover[{f}]: locality lb failover settings must specify different regions")
                if "*" in str(entry.get("to", "")):
                    out.append(f"{where}.failover[{f}]: locality lb failover region should not contain '*' wildcard")
    if obj.get("kind") == "VirtualService":
        for section in ("http", "tcp", "tls"):
            for i, rule in enumerate((obj.get("spec") or {}).get(section) or []):
                redirected = section == "http" and bool({"redirect", "directResponse"} & set(rule))
                if not redirected and not rule.get("route"):
                    out.append(f"spec.{section}[{i}]: a route needs at least one destination")
    return out


def controller_problems(obj: Mapping[str, Any]) -> list[str]:
    """What the owning controller's own admission webhook refuses (see the module docstring)."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    out = []
    if kind == "GlobalTrafficPolicy":
        lb, targets = spec.get("lbType", "Locality"), spec.get("targets") or []
        if lb == "Locality" and len(targets) > 1:
            out.append("FSM: in case of Locality load balancer, the traffic can only be sticky to exact one cluster")
        if lb == "FailOver" and not targets:
            out.append("FSM: requires at least one cluster for failover")
        if any((t.get("weight") or 0) < 0 for t in targets):
            out.append("FSM: weights must be >= 0 for active-active load balancing")
    if kind == "TrafficSplit" and not spec.get("backends"):
        out.append("SMI: a TrafficSplit needs at least one backend")
    if str(obj.get("apiVersion", "")).startswith("networking.istio.io/"):
        out += istio_problems(obj)
    return out


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Every reason the API server or the kind's controller would refuse `obj` (empty: valid)."""
    return schema_problems(obj) + controller_problems(obj)
