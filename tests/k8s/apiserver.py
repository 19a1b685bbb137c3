"""A test double of the Kubernetes API server, spoken to over real HTTPS by the real `kubernetes` client.

It is a double because no kube-apiserver can run on these machines: no binary is in the reachable
registries and there is no container engine to run one. It implements what the client uses for the
kinds policyengine reads and writes, with the API server's own status codes and Status bodies:

- discovery: `/api`, `/api/v1`, `/apis`, `/apis/GROUP/VERSION` (only the kinds registered: a CRD that
  is not installed is a 404 on its group, as on a real cluster);
- list with `resourceVersion`, `labelSelector` and `limit`/`continue` pagination (a continue token of
  an expired version is `410 Gone`);
- watch (`?watch=1`): a chunked stream of JSON lines from a resourceVersion, BOOKMARK events with
  `allowWatchBookmarks`, an ERROR event with status 410 when the version has expired, the end of the
  stream at `timeoutSeconds`;
- get, create (POST), update (PUT), merge/JSON patch and delete of single objects: `404`, `409`
  AlreadyExists or Conflict on a stale `metadata.resourceVersion`, `422` for an invalid object (no
  name, a name that is not a DNS label, or what `invalid` says), `413` for a body over `max_body_bytes`;
- a bearer token (`401` without it).

Tests mutate the store (`put`, `remove`), force versions to expire (`expire`), drop every open watch
(`drop_watches`), make the next requests fail (`fail_next`), and read what was asked (`requests`).
Coordination Leases are one more registered kind.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch

from policyengine.api.tls import make_dev_certificates

TOKEN = "double-token-" + "t" * 24
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class Resource:
    """One kind the double serves: its group, versions (the first preferred), plural and scope."""

    group: str
    kind: str
    plural: str
    versions: tuple[str, ...]
    namespaced: bool = True

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


BUILTIN = (
    Resource("", "Namespace", "namespaces", ("v1",), namespaced=False),
    Resource("", "Service", "services", ("v1",)),
    Resource("", "Node", "nodes", ("v1",), namespaced=False),
    Resource("discovery.k8s.io", "EndpointSlice", "endpointslices", ("v1",)),
    Resource("coordination.k8s.io", "Lease", "leases", ("v1",)),
)
MCS = (
    Resource("multicluster.x-k8s.io", "ServiceExport", "serviceexports", ("v1alpha1",)),
    Resource("multicluster.x-k8s.io", "ServiceImport", "serviceimports", ("v1alpha1",)),
)
GATEWAY = tuple(
    Resource("gateway.networking.k8s.io", kind, kind.lower() + "s", ("v1", "v1beta1"))
    for kind in ("HTTPRoute", "GRPCRoute", "ReferenceGrant")
)
REPORTS = (
    Resource("wgpolicyk8s.io", "PolicyReport", "policyreports", ("v1alpha2",)),
    Resource("wgpolicyk8s.io", "ClusterPolicyReport", "clusterpolicyreports", ("v1alpha2",), namespaced=False),
    Resource("openreports.io", "Report", "reports", ("v1alpha1",)),
    Resource("openreports.io", "ClusterReport", "clusterreports", ("v1alpha1",), namespaced=False),
)
DEFAULT_RESOURCES = BUILTIN + MCS + GATEWAY + REPORTS


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class Refusal(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.body = status(code, reason, message)
        self.code = code


@dataclass
class Event:
    version: int
    resource: Resource
    type: str
    obj: dict[str, Any]


@dataclass
class Store:
    """Objects by resource and (namespace, name), one global resourceVersion, and the event history."""

    resources: dict[tuple[str, str], Resource]
    objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    history: list[Event] = field(default_factory=list)
    history_versions: list[int] = field(default_factory=list)
    version: int = 100
    expired_below: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)


class ApiServerDouble:
    """The double on a free loopback port over HTTPS (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        resources: tuple[Resource, ...] = DEFAULT_RESOURCES,
        *,
        bookmark_seconds: float = 0.5,
        max_body_bytes: int = 3 * 1024 * 1024,
    ) -> None:
        self.certs = make_dev_certificates(directory / "apiserver-tls", reuse=False)
        self.store = Store({(r.group, r.plural): r for r in resources})
        self.bookmark_seconds = bookmark_seconds
        self.max_body_bytes = max_body_bytes
        self.invalid: Callable[[Mapping[str, Any]], str | None] = lambda obj: None
        self.requests: list[tuple[str, str]] = []
        self._failures: list[tuple[int, str, str]] = []
        self._watch_generation = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.certs.cert), str(self.certs.key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="apiserver-double", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.drop_watches()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- what tests do ------------------------------------------------------------------------------
    def resource(self, kind: str, group: str = "") -> Resource:
        for r in self.store.resources.values():
            if r.kind == kind and r.group == group:
                return r
        raise KeyError(f"{group}/{kind} is not served")

    def install(self, *resources: Resource) -> None:
        with self.store.changed:
            for r in resources:
                self.store.resources[(r.group, r.plural)] = r

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace `obj` (its kind from apiVersion/kind), as a controller would; its new version."""
        group = str(obj["apiVersion"]).rpartition("/")[0]
        resource = self.resource(str(obj["kind"]), group)
        meta = obj.get("metadata", {})
        key = (str(meta.get("namespace", "")) if resource.namespaced else "", str(meta["name"]))
        with self.store.changed:
            exists = key in self.store.objects.get((resource.group, resource.plural), {})
            return self._commit(resource, key, copy.deepcopy(dict(obj)), "MODIFIED" if exists else "ADDED")

    def put_many(self, objects: list[Mapping[str, Any]]) -> None:
        for obj in objects:
            self.put(obj)

    def remove(self, kind: str, namespace: str, name: str, group: str = "") -> None:
        resource = self.resource(kind, group)
        with self.store.changed:
            self._delete(resource, (namespace if resource.namespaced else "", name))

    def get(self, kind: str, namespace: str, name: str, group: str = "") -> dict[str, Any] | None:
        resource = self.resource(kind, group)
        with self.store.changed:
            found = self.store.objects.get((resource.group, resource.plural), {}).get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def all(self, kind: str, group: str = "") -> list[dict[str, Any]]:
        resource = self.resource(kind, group)
        with self.store.changed:
            return [copy.deepcopy(o) for o in self.store.objects.get((resource.group, resource.plural), {}).values()]

    def expire(self) -> None:
        """Every version up to now has expired: watches and continue tokens from them get 410 Gone."""
        with self.store.changed:
            self.store.expired_below = self.store.version + 1
            self.store.history.clear()
            self.store.history_versions.clear()
            self._watch_generation += 1
            self.store.changed.notify_all()

    def drop_watches(self) -> None:
        """End every open watch stream (as a restarted API server or a broken connection would)."""
        with self.store.changed:
            self._watch_generation += 1
            self.store.changed.notify_all()

    def fail_next(self, count: int, code: int = 500, path_contains: str = "", method: str = "") -> None:
        """Answer the next `count` requests (of `method`, when given) whose path contains `path_contains`
        with `code`."""
        with self._lock:
            self._failures.extend([(code, path_contains, method)] * count)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def count(self, method: str, contains: str, *, watch: bool | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, path in self.requests
                if m == method and contains in path and (watch is None or ("watch=" in path.lower()) == watch)
            )

    # -- the store -----------------------------------------------------------------------------------
    def _commit(self, resource: Resource, key: tuple[str, str], obj: dict[str, Any], type_: str) -> dict[str, Any]:
        store = self.store
        store.version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(store.version)
        meta.setdefault("uid", f"uid-{store.version}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if resource.namespaced:
            meta["namespace"] = key[0]
        else:
            meta.pop("namespace", None)
        store.objects.setdefault((resource.group, resource.plural), {})[key] = obj
        store.history.append(Event(store.version, resource, type_, copy.deepcopy(obj)))
        store.history_versions.append(store.version)
        store.changed.notify_all()
        return copy.deepcopy(obj)

    def _delete(self, resource: Resource, key: tuple[str, str]) -> dict[str, Any]:
        store = self.store
        bucket = store.objects.get((resource.group, resource.plural), {})
        if key not in bucket:
            raise Refusal(404, "NotFound", f'{resource.plural} "{key[1]}" not found')
        obj = bucket.pop(key)
        store.version += 1
        obj["metadata"]["resourceVersion"] = str(store.version)
        store.history.append(Event(store.version, resource, "DELETED", copy.deepcopy(obj)))
        store.history_versions.append(store.version)
        store.changed.notify_all()
        return obj

    def take_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for i, (code, contains, only) in enumerate(self._failures):
                if contains in path and only in ("", method):
                    del self._failures[i]
                    return code
        return None


# -- HTTP ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    resource: Resource
    version: str
    namespace: str | None
    name: str | None


def _truthy(query: Mapping[str, list[str]], key: str) -> bool:
    return query.get(key, [""])[0].lower() in ("1", "true")


def _matches(selector: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _handler(double: ApiServerDouble) -> type[BaseHTTPRequestHandler]:
    store = double.store

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as Go's net/http (the real API server) sets it: without it the body written after
        # the headers waits for the client's delayed ACK, about 40 ms a response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        # -- dispatch --------------------------------------------------------------------------
        def _serve(self, method: str) -> None:
            with double._lock:
                double.requests.append((method, self.path))
            try:
                body = self._body()
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    raise Refusal(401, "Unauthorized", "Unauthorized")
                failure = double.take_failure(method, self.path)
                if failure is not None:
                    reason = {409: "Conflict", 413: "RequestEntityTooLarge", 422: "Invalid"}.get(
                        failure, "InternalError"
                    )
                    raise Refusal(failure, reason, f"injected failure {failure}")
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                discovery = self._discovery(url.path)
                if discovery is not None:
                    return self._json(200, discovery)
                target = self._target(url.path)
                if method == "GET" and target.name is None:
                    if _truthy(query, "watch"):
                        return self._watch(target, query)
                    return self._json(200, self._list(target, query))
                return self._json(*self._one(method, target, body))
            except Refusal as refusal:
                self._json(refusal.code, refusal.body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            if length > double.max_body_bytes:
                self.rfile.read(length)
                raise Refusal(
                    413, "RequestEntityTooLarge", f"Request entity too large: limit is {double.max_body_bytes}"
                )
            return self.rfile.read(length) if length else b""

        def _json(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _discovery(self, path: str) -> dict[str, Any] | None:
            parts = [p for p in path.split("/") if p]
            with store.changed:
                resources = list(store.resources.values())
            if parts == ["api"]:
                return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            if parts == ["apis"]:
                groups: dict[str, list[str]] = {}
                for r in resources:
                    if r.group:
                        known = groups.setdefault(r.group, [])
                        known.extend(v for v in r.versions if v not in known)
                return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                     "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                    for g, vs in sorted(groups.items())
                ]}  # fmt: skip
            if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
                group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
                served = [r for r in resources if r.group == group and version in r.versions]
                if not served:
                    raise Refusal(404, "NotFound", "the server could not find the requested resource")
                return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "/".join(parts[1:]),
                        "resources": [{"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                                       "kind": r.kind, "verbs": ["get", "list", "watch", "create", "update",
                                                                 "patch", "delete"]} for r in served]}  # fmt: skip
            return None

        def _target(self, path: str) -> Target:
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["api"] and len(parts) >= 3:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[:1] == ["apis"] and len(parts) >= 4:
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                raise Refusal(404, "NotFound", "the server could not find the requested resource")
            namespace = None
            if len(rest) >= 3 and rest[0] == "namespaces":
                namespace, rest = rest[1], rest[2:]
            plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
            with store.changed:
                resource = store.resources.get((group, plural))
            if resource is None or version not in resource.versions or (namespace is not None) > resource.namespaced:
                raise Refusal(404, "NotFound", "the server could not find the requested resource")
            return Target(resource, version, namespace, name)

        def _shown(self, target: Target, obj: Mapping[str, Any]) -> dict[str, Any]:
            return {**copy.deepcopy(dict(obj)), "apiVersion": target.resource.api_version(target.version),
                    "kind": target.resource.kind}  # fmt: skip

        # -- list and watch --------------------------------------------------------------------
        def _selected(self, target: Target, obj: Mapping[str, Any], selector: str) -> bool:
            meta = obj.get("metadata", {})
            if target.namespace is not None and meta.get("namespace") != target.namespace:
                return False
            return _matches(selector, meta.get("labels") or {})

        def _list(self, target: Target, query: Mapping[str, list[str]]) -> dict[str, Any]:
            selector = query.get("labelSelector", [""])[0]
            limit = int(query.get("limit", ["0"])[0] or 0)
            token = query.get("continue", [""])[0]
            with store.changed:
                offset, version = 0, store.version
                if token:
                    version, offset = (int(x) for x in base64.urlsafe_b64decode(token).decode().split(":"))
                    if version < store.expired_below:
                        raise Refusal(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a "
                            "consistent list result. You can start a new list without the continue parameter.",
                        )
                bucket = store.objects.get((target.resource.group, target.resource.plural), {})
                keys = [k for k in sorted(bucket) if self._selected(target, bucket[k], selector)]
                chosen = keys[offset : offset + limit] if limit else keys[offset:]
                page = [self._shown(target, bucket[k]) for k in chosen]  # only the page is copied
                total = len(keys)
                current = store.version
            if target.resource in BUILTIN:  # typed lists leave apiVersion and kind out of their items
                page = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in page]
            meta: dict[str, Any] = {"resourceVersion": str(version if token else current)}
            if limit and offset + limit < total:
                meta["continue"] = base64.urlsafe_b64encode(
                    f"{meta['resourceVersion']}:{offset + limit}".encode()
                ).decode()
                meta["remainingItemCount"] = total - offset - limit
            return {"kind": f"{target.resource.kind}List", "apiVersion": target.resource.api_version(target.version),
                    "metadata": meta, "items": page}  # fmt: skip

        def _watch(self, target: Target, query: Mapping[str, list[str]]) -> None:
            selector = query.get("labelSelector", [""])[0]
            since = int(query.get("resourceVersion", ["0"])[0] or 0)
            timeout = float(query.get("timeoutSeconds", ["300"])[0])
            bookmarks = _truthy(query, "allowWatchBookmarks")
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for line in self._events(target, selector, since, timeout, bookmarks):
                data = (json.dumps(line) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True

        def _events(
            self, target: Target, selector: str, since: int, timeout: float, bookmarks: bool
        ) -> Iterator[dict[str, Any]]:
            end = time.monotonic() + timeout
            next_bookmark = time.monotonic() + double.bookmark_seconds
            resource = target.resource
            with store.changed:
                generation = double._watch_generation
                expired = since and since < store.expired_below
                below = store.expired_below
            if expired:
                yield {
                    "type": "ERROR",
                    "object": status(410, "Expired", f"too old resource version: {since} ({below})"),
                }
                return
            sent = since
            while time.monotonic() < end:
                out: list[dict[str, Any]] = []
                with store.changed:
                    if generation != double._watch_generation:
                        return
                    start = bisect.bisect_right(store.history_versions, sent)
                    pending = [
                        e for e in store.history[start:]
                        if e.resource is resource and self._selected(target, e.obj, selector)
                    ]  # fmt: skip
                    if store.history_versions:
                        sent = max(sent, store.history_versions[-1])
                    out = [{"type": e.type, "object": self._shown(target, e.obj)} for e in pending]
                    if not out and bookmarks and time.monotonic() >= next_bookmark:
                        sent = max(sent, store.version)
                        out = [{"type": "BOOKMARK", "object": {"kind": resource.kind,
                                "apiVersion": resource.api_version(target.version),
                                "metadata": {"resourceVersion": str(sent)}}}]  # fmt: skip
                        next_bookmark = time.monotonic() + double.bookmark_seconds
                    if not out:
                        store.changed.wait(min(0.2, max(0.0, end - time.monotonic())))
                yield from out

        # -- single objects --------------------------------------------------------------------
        def _one(self, method: str, target: Target, body: bytes) -> tuple[int, dict[str, Any]]:
            resource = target.resource
            namespace = target.namespace or ""
            with store.changed:
                bucket = store.objects.get((resource.group, resource.plural), {})
                if method == "POST":
                    if target.name is not None:
                        raise Refusal(405, "MethodNotAllowed", "POST to a named object")
                    obj = self._valid(target, body)
                    key = (namespace, obj["metadata"]["name"])
                    if key in bucket:
                        raise Refusal(409, "AlreadyExists", f'{resource.plural} "{key[1]}" already exists')
                    return 201, self._shown(target, double._commit(resource, key, obj, "ADDED"))
                key = (namespace, target.name or "")
                found = bucket.get(key)
                if method == "GET":
                    if found is None:
                        raise Refusal(404, "NotFound", f'{resource.plural} "{key[1]}" not found')
                    return 200, self._shown(target, found)
                if method == "DELETE":
                    return 200, self._shown(target, double._delete(resource, key))
                if found is None:
                    raise Refusal(404, "NotFound", f'{resource.plural} "{key[1]}" not found')
                if method == "PUT":
                    obj = self._valid(target, body)
                    given = obj["metadata"].get("resourceVersion")
                    if given is not None and given != found["metadata"]["resourceVersion"]:
                        raise Refusal(
                            409,
                            "Conflict",
                            f'Operation cannot be fulfilled on {resource.plural} "{key[1]}": the object has been '
                            "modified; please apply your changes to the latest version and try again",
                        )
                    return 200, self._shown(target, double._commit(resource, key, _kept(found, obj), "MODIFIED"))
                patch = json.loads(body or b"{}")
                if self.headers.get("content-type", "").startswith("application/json-patch"):
                    patched = jsonpatch.apply_patch(copy.deepcopy(found), patch)
                else:
                    patched = _merge(copy.deepcopy(found), patch)
                given = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
                if given is not None and given != found["metadata"]["resourceVersion"]:
                    raise Refusal(409, "Conflict", "the object has been modified")
                obj = self._valid(target, json.dumps(patched).encode())
                return 200, self._shown(target, double._commit(resource, key, _kept(found, obj), "MODIFIED"))

        def _valid(self, target: Target, body: bytes) -> dict[str, Any]:
            try:
                obj = json.loads(body)
            except ValueError as exc:
                raise Refusal(400, "BadRequest", f"the body is not JSON: {exc}") from None
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            problem = None
            if not isinstance(name, str) or not name:
                problem = "metadata.name: Required value: name or generateName is required"
            elif not NAME.match(name) or len(name) > 253:
                problem = f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of ..."
            elif target.name is not None and name != target.name:
                problem = f"metadata.name: Invalid value: {name!r}: must match the name in the URL"
            else:
                problem = double.invalid(obj)
            if problem:
                raise Refusal(422, "Invalid", f"{target.resource.kind} {name!r} is invalid: {problem}")
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
            return dict(obj)

    return Handler


def _kept(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` with the fields an update never changes (uid, creationTimestamp) taken from `old`."""
    meta = new.setdefault("metadata", {})
    for field_name in ("uid", "creationTimestamp"):
        meta[field_name] = old["metadata"][field_name]
    return new


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def kubeconfig(path: Path, contexts: Mapping[str, ApiServerDouble], current: str | None = None) -> Path:
    """A kubeconfig with one context (cluster and user of the same name) per double, trusting its CA."""
    clusters, users, ctxs = [], [], []
    for name, double in contexts.items():
        ca = base64.b64encode(double.certs.ca_cert.read_bytes()).decode()
        clusters.append({"name": name, "cluster": {"server": double.url, "certificate-authority-data": ca}})
        users.append({"name": name, "user": {"token": TOKEN}})
        ctxs.append({"name": name, "context": {"cluster": name, "user": name}})
    config = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "users": users, "contexts": ctxs,
              "current-context": current or next(iter(contexts))}  # fmt: skip
    path.write_text(json.dumps(config, indent=1))
    return path
