"""Objects the live-cluster tests put in an API server double."""

from __future__ import annotations

from typing import Any


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def node(name: str, region: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/region": region}}}  # fmt: skip


def service(namespace: str, name: str, annotations: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations or {}},
            "spec": {"ports": [{"port": 8080}]}}  # fmt: skip


def service_import(namespace: str, name: str, *clusters: str) -> dict[str, Any]:
    return {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ClusterSetIP", "ports": [{"port": 8080, "protocol": "TCP"}]},
            "status": {"clusters": [{"cluster": c} for c in clusters]}}  # fmt: skip


def endpoint_slice(namespace: str, name: str, service: str, source: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"multicluster.kubernetes.io/service-name": service,
                                    "multicluster.kubernetes.io/source-cluster": source}},
            "addressType": "IPv4", "endpoints": []}  # fmt: skip


def http_route(namespace: str, name: str, backend: str) -> dict[str, Any]:
    """An HTTPRoute whose one backend is the ServiceImport `backend` (routed wherever it is observed)."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"group": "multicluster.x-k8s.io", "kind": "ServiceImport",
                                                 "name": backend, "port": 8080}]}]}}  # fmt: skip


def service_export(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": name, "namespace": namespace}}  # fmt: skip
