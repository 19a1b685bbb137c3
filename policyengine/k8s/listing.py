"""List (paged, consistent) and watch any kind of `kinds` as plain dicts, and find the version served.

The client's typed models are skipped (`_preload_content=False`, JSON parsed by orjson): the inventory
keeps a few fields of each object and the scan hands dicts to the extractors. List items get the
`apiVersion` and `kind` the API server leaves out of typed lists. `Discovery` asks the API server which
version of a kind it serves (the group's preferred one first); a kind whose group is not served (a CRD
that is not installed) has none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from policyengine.k8s.kinds import Kind

PAGE_SIZE = 500
REQUEST_SECONDS = 30.0


def list_call(api: client.ApiClient, kind: Kind, version: str) -> Callable[..., Any]:
    """The client's list function of `kind` across namespaces (the cluster-wide list a watch also uses)."""
    if kind.group == "":
        core = client.CoreV1Api(api)
        calls: dict[str, Callable[..., Any]] = {
            "Namespace": core.list_namespace,
            "Service": core.list_service_for_all_namespaces,
            "Node": core.list_node,
        }
        return calls[kind.kind]
    if kind.group == "discovery.k8s.io" and kind.kind == "EndpointSlice":
        return client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces
    custom = client.CustomObjectsApi(api)

    def list_custom(**kwargs: Any) -> Any:
        return custom.list_cluster_custom_object(kind.group, version, kind.plural, **kwargs)

    return list_custom


@dataclass(frozen=True)
class Listing:
    """Every object of a kind at one resourceVersion."""

    items: list[dict[str, Any]]
    resource_version: str


def list_all(
    api: client.ApiClient,
    kind: Kind,
    version: str,
    *,
    label_selector: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Listing:
    """All objects of `kind`, `page_size` at a time (`limit`/`continue`). Raises ApiException (a 410 when
    a continue token expired mid-way: list again)."""
    call = list_call(api, kind, version)
    items: list[dict[str, Any]] = []
    token: str | None = None
    api_version = kind.api_version(version)
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False, "_request_timeout": REQUEST_SECONDS}
        if token:
            kwargs["_continue"] = token
        if label_selector:
            kwargs["label_selector"] = label_selector
        response = call(**kwargs)
        body = orjson.loads(response.data)
        for item in body.get("items") or []:
            if isinstance(item, dict):
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind.kind)
                items.append(item)
        metadata = body.get("metadata") or {}
        token = metadata.get("continue")
        if not token:
            return Listing(items, str(metadata.get("resourceVersion", "")))


@dataclass
class WatchStream:
    """One watch of a kind from a resourceVersion; `stop()` ends it from another thread."""

    api: client.ApiClient
    kind: Kind
    version: str
    label_selector: str | None = None
    _watch: watch.Watch = field(default_factory=lambda: watch.Watch(return_type="object"))

    def events(self, resource_version: str, seconds: int) -> Iterator[dict[str, Any]]:
        """Events (type, raw object) after `resource_version`, bookmarks included, for up to `seconds`.

        Raises ApiException: status 410 when the version has expired (list again)."""
        kwargs: dict[str, Any] = {
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": seconds,
            "_request_timeout": seconds + REQUEST_SECONDS,
        }
        if self.label_selector:
            kwargs["label_selector"] = self.label_selector
        for event in self._watch.stream(list_call(self.api, self.kind, self.version), **kwargs):
            if isinstance(event, dict):
                yield {"type": event.get("type"), "object": event.get("raw_object") or {}}

    def stop(self) -> None:
        self._watch.stop()
        response = getattr(self._watch, "_resp", None)
        if response is not None:
            with contextlib.suppress(Exception):  # closed from another thread: the stream's thread sees it end
                response.close()


class Discovery:
    """Which version of each kind the API server serves (None: its group or kind is not served)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._groups: dict[str, list[str]] | None = None
        self._resources: dict[str, set[str]] = {}

    def refresh(self) -> None:
        self._groups = None
        self._resources.clear()

    def _group_versions(self) -> dict[str, list[str]]:
        if self._groups is None:
            found = client.ApisApi(self.api).get_api_versions(_request_timeout=REQUEST_SECONDS)
            groups: dict[str, list[str]] = {}
            for group in found.groups or []:
                preferred = group.preferred_version.version if group.preferred_version else None
                versions = [v.version for v in group.versions or []]
                groups[group.name] = [*([preferred] if preferred else []), *(v for v in versions if v != preferred)]
            self._groups = groups
        return self._groups

    def _plurals(self, group: str, version: str) -> set[str]:
        key = f"{group}/{version}"
        if key not in self._resources:
            try:
                found = client.CustomObjectsApi(self.api).get_api_resources(
                    group, version, _request_timeout=REQUEST_SECONDS
                )
                self._resources[key] = {r.name for r in found.resources or []}
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._resources[key] = set()
        return self._resources[key]

    def version(self, kind: Kind) -> str | None:
        """The version to read `kind` at: the group's preferred one that serves it, else the first of
        `kind.versions` that is served. Raises ApiException on errors other than 404."""
        if kind.group == "":
            return kind.versions[0]
        served = self._group_versions().get(kind.group)
        if not served:
            return None
        ordered = [v for v in served if v in kind.versions] + [v for v in served if v not in kind.versions]
        for version in ordered:
            if kind.plural in self._plurals(kind.group, version):
                return version
        return None
