"""The fail-closed validating webhook sees only what can cross clusters: its rendered matchConditions
(`kubectl kustomize` of base and the overlays), evaluated as the API server does (every condition must
be true for the webhook to be called) by a real CEL evaluator (cel-python, pinned in the test extras;
Kubernetes uses cel-go, and these expressions use only the standard `has`, `in`, `||`, `&&`, `!=`).
A plain Service is never sent; every Service the extractors find a crossing in is; every routing kind
is; an expression that errors would fail closed, so none may error on any sample."""

from __future__ import annotations

import functools
from typing import Any

import celpy
import pytest

from policyengine.admission.extract import ExtractionContext, extractors_for
from policyengine.policy import load_policy
from policyengine.resources import default_policies

from .objects import exported_service, http_route
from .test_deploy import OTHERS, OWN, one, render

USER = {"username": "alice@example.com", "groups": ["system:authenticated"]}
MARKERS = [
    ("annotations", "service.cilium.io/global", "true"),
    ("annotations", "service.cilium.io/global", "false"),
    ("annotations", "service.cilium.io/shared", "false"),
    ("annotations", "io.cilium/global-service", "true"),
    ("annotations", "io.cilium/shared-service", "false"),
    ("labels", "mirror.linkerd.io/exported", "true"),
    ("labels", "mirror.linkerd.io/exported", "remote-discovery"),
    ("labels", "mirror.linkerd.io/federated", "member"),
]


def service(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "checkout", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": [{"port": 80}]}}


def request_for(obj: dict[str, Any], user: dict[str, Any] = USER) -> dict[str, Any]:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    resource = str(obj["kind"]).lower() + "s"
    return {
        "request": {
            "operation": "CREATE",
            "resource": {"group": group, "version": version, "resource": resource},
            "userInfo": user,
            "namespace": obj["metadata"].get("namespace", ""),
        },
        "object": obj,
        "oldObject": None,
    }


@functools.cache
def program(expression: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def sends(hook: dict[str, Any], obj: dict[str, Any], user: dict[str, Any] = USER) -> bool:
    """Whether the API server would call `hook` for `obj` (all matchConditions true; an error raises)."""
    context = {name: celpy.json_to_cel(value) for name, value in request_for(obj, user).items()}
    results = [program(c["expression"]).evaluate(context) for c in hook["matchConditions"]]
    assert all(isinstance(r, celpy.celtypes.BoolType) for r in results), results  # an error fails closed
    return all(bool(r) for r in results)


def validating(overlay: str) -> dict[str, Any]:
    (hook,) = one(render(overlay), "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    return dict(hook)


@pytest.mark.parametrize("overlay", sorted(set(OWN) | set(OTHERS)))
def test_plain_services_are_not_sent_to_the_fail_closed_webhook(overlay: str) -> None:
    hook = validating(overlay)
    assert not sends(hook, service())  # no labels, no annotations: no error either
    assert not sends(hook, service(labels={}, annotations={}))
    assert not sends(hook, service(labels={"app": "checkout"}, annotations={"example.com/owner": "team-a"}))
    assert not sends(hook, service(annotations={"residency.policyengine.io/data-classes": "personal"}))
    for where, key, value in MARKERS:
        marked = service(**{where: {key: value}})  # type: ignore[arg-type]
        assert sends(hook, marked), (key, value)
    for routing in (http_route("shop", "checkout"), exported_service("shop")):
        assert sends(hook, routing)
    own = {"username": "system:serviceaccount:policyengine-system:policyengine"}
    assert not sends(hook, http_route("shop", "checkout"), own)


def test_every_service_with_a_crossing_is_sent() -> None:
    """The extractors' own verdict: no Service they find a route in may skip the webhook."""
    hook = validating("base")
    policy = load_policy(default_policies())
    context = ExtractionContext("eu-1", policy)
    samples = [service(**{where: {key: value}}) for where, key, value in MARKERS]  # type: ignore[arg-type]
    samples += [service(), service(labels={"app": "x"}), exported_service("shop")]
    crossing = 0
    for sample in samples:
        found = [c for extractor in extractors_for(sample) for c in extractor.extract(sample, context)]
        if found:
            crossing += 1
            assert sends(hook, sample), sample["metadata"]
    assert crossing >= 4  # the samples do exercise both families
