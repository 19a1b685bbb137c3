"""Kubernetes objects the webhook tests send (real shapes, namespaces of the test policy repo)."""

from __future__ import annotations

from typing import Any

SERVICE_IMPORT = {"group": "multicluster.x-k8s.io", "kind": "ServiceImport"}
DATA = "residency.policyengine.io/data-classes"
SUBJECTS = "residency.policyengine.io/subjects"


def http_route(namespace: str, service: str, name: str = "store") -> dict[str, Any]:
    """An HTTPRoute whose only backend is the multi-cluster ServiceImport of `service`."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "external-http"}],
            "rules": [{"backendRefs": [{**SERVICE_IMPORT, "name": service, "port": 8080}]}],
        },
    }


def exported_service(
    namespace: str, name: str = "ledger", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Service exported to every linked cluster by Linkerd, holding personal data of EEA subjects."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"mirror.linkerd.io/exported": "true", **(labels or {})},
        "annotations": {DATA: "personal", SUBJECTS: "EEA"},
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def deployment(namespace: str = "shop", name: str = "checkout") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, "team": "payments"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1.4"}]},
            },
        },
    }


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "shop"},
        "data": {},
    }
