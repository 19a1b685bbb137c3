"""A test OPA REST server: stands in for the OPA *server*, not for OPA's evaluation.

No `opa` binary installs on these machines, so the tests run this small HTTP server in a thread (or as
`python tests/opa_server.py --port 0 [--bundle b.tar.gz | --bundle-url URL]`). It implements the parts of
OPA's REST API that policyengine and `opa-python-client` use:

- `GET/PUT/DELETE /v1/policies[/{id}]` (ids may contain slashes; a module that does not parse or compile
  is refused with 400 and OPA's own error, and nothing changes),
- `GET/PUT/PATCH/POST/DELETE /v1/data/{path}` (POST evaluates with `{"input": ...}`; an undefined
  document answers `{}`; an evaluation error answers 500 `internal_error`),
- `POST /v1/query`, `GET /health`, bearer-token authentication (optional),
- bundles: `load_bundle(path)` / `--bundle` (like `opa run --server --bundle`) and `fetch_bundle(url)` /
  `--bundle-url` (like the bundle plugin polling a bundle service, with ETag); bundle roots are owned:
  writes under them are refused, as OPA does.

Every evaluation is done by the real OPA Go evaluator from `opa-golib-python-bindings` (test-only).
That evaluator always runs with strict builtin errors; OPA's default (a builtin error makes the
expression undefined) is not reproduced, and policyengine always asks for `strict-builtin-errors=true`.

Failure simulation for the tests: `stop()` (down: listening socket and open connections closed),
`start()` again on the same port, `restart(clear=True)` (OPA restarted and lost its in-memory state),
`fault = "error"` (every API call answers 500) and `fault = "slow"` with `delay` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import io
import json
import re
import socket
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from opa_bindings import OpaEngine, OpaError

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


class BundleError(Exception):
    """A bundle that OPA would refuse to activate."""


class ApiError(Exception):
    """An error answer in OPA's shape: {"code", "message", "errors"?}."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


def _split(path: str) -> list[str]:
    return [unquote(p) for p in path.strip("/").split("/") if p]


def _ref(segments: list[str]) -> str:
    return "data" + "".join(f"[{json.dumps(s)}]" for s in segments)


def _package_path(source: str) -> list[str]:
    match = _PACKAGE.search(source)
    return match.group(1).split(".") if match else []


def _owned(path: list[str], roots: list[list[str]]) -> bool:
    return any(path[: len(root)] == root or root[: len(path)] == path for root in roots)


def _compile_errors(module_id: str, exc: OpaError) -> ApiError:
    kind = "rego_parse_error" if exc.code == "parse_error" else "rego_compile_error"
    return ApiError(
        400,
        "invalid_parameter",
        "error(s) occurred while compiling module(s)",
        [{"code": kind, "message": exc.message, "location": {"file": module_id}}],
    )


class OpaState:
    """What an OPA holds in memory: modules, the data document and the active bundle."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.bundle_roots: list[list[str]] = []
        self.bundle_modules: set[str] = set()
        self.bundle_revision: str | None = None
        self.bundle_etag: str | None = None
        self.lock = threading.RLock()
        self._engine: OpaEngine | None = None

    # -- evaluation ------------------------------------------------------------------------------

    def _build(self, modules: dict[str, str], data: dict[str, Any]) -> OpaEngine:
        engine = OpaEngine()
        try:
            for module_id, source in sorted(modules.items()):
                engine.add_policy(module_id, source)
            if data:
                engine.add_data(data)
            engine.eval_query("__compiled := true")  # compiles every module, as OPA does on a write
        except OpaError:
            engine.close()
            raise
        return engine

    def engine(self) -> OpaEngine:
        with self.lock:
            if self._engine is None:
                self._engine = self._build(self.modules, self.data)
            return self._engine

    def _replace(self, modules: dict[str, str], data: dict[str, Any]) -> None:
        """Swap in new modules and data only if they compile together (else raise OpaError)."""
        engine = self._build(modules, data)
        old = self._engine
        self.modules, self.data, self._engine = modules, data, engine
        if old is not None:
            old.close()

    def evaluate(self, segments: list[str], input_value: Any, has_input: bool) -> tuple[bool, Any]:
        engine = self.engine()
        rows = engine.eval_query(f"__value := {_ref(segments)}", input_value if has_input else None)
        if not rows or "__value" not in rows[0]:
            return False, None
        return True, rows[0]["__value"]

    # -- policies --------------------------------------------------------------------------------

    def put_policy(self, module_id: str, source: str) -> None:
        with self.lock:
            package = _package_path(source)
            if (
                self.bundle_roots
                and module_id not in self.bundle_modules
                and _owned(package, self.bundle_roots)
            ):
                raise ApiError(400, "invalid_parameter", f"path {'/'.join(package)} is owned by bundle")
            modules = dict(self.modules)
            modules[module_id] = source
            try:
                self._replace(modules, self.data)
            except OpaError as exc:
                raise _compile_errors(module_id, exc) from None

    def delete_policy(self, module_id: str) -> None:
        with self.lock:
            if module_id not in self.modules:
                raise ApiError(404, "resource_not_found", f'storage_not_found_error: policy id "{module_id}"')
            modules = dict(self.modules)
            del modules[module_id]
            try:
                self._replace(modules, self.data)
            except OpaError as exc:
                raise _compile_errors(module_id, exc) from None

    # -- data ------------------------------------------------------------------------------------

    def _check_owned(self, segments: list[str]) -> None:
        if self.bundle_roots and _owned(segments, self.bundle_roots):
            raise ApiError(400, "invalid_parameter", f"path {'/'.join(segments)} is owned by bundle")

    def put_data(self, segments: list[str], value: Any) -> None:
        with self.lock:
            self._check_owned(segments)
            if not segments:
                if not isinstance(value, dict):
                    raise ApiError(400, "invalid_parameter", "the root document must be an object")
                self._replace_data(copy.deepcopy(value))
                return
            data = copy.deepcopy(self.data)
            node = data
            for segment in segments[:-1]:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = node[segment] = {}
                node = child
            node[segments[-1]] = value
            self._replace_data(data)

    def delete_data(self, segments: list[str]) -> None:
        with self.lock:
            self._check_owned(segments)
            data = copy.deepcopy(self.data)
            node: Any = data
            for segment in segments[:-1]:
                node = node.get(segment) if isinstance(node, dict) else None
            if not segments or not isinstance(node, dict) or segments[-1] not in node:
                raise ApiError(404, "resource_not_found", f"storage_not_found_error: {'/'.join(segments)}")
            del node[segments[-1]]
            self._replace_data(data)

    def patch_data(self, segments: list[str], ops: list[dict[str, Any]]) -> None:
        with self.lock:
            self._check_owned(segments)
            data = copy.deepcopy(self.data)
            for op in ops:
                path = segments + _split(str(op.get("path", "")))
                if not path:
                    raise ApiError(400, "invalid_parameter", "cannot patch the root document")
                parent: Any = data
                for segment in path[:-1]:
                    if not isinstance(parent, dict) or segment not in parent:
                        if op.get("op") == "add" and isinstance(parent, dict):
                            parent[segment] = {}
                        else:
                            raise ApiError(
                                404, "resource_not_found", f"storage_not_found_error: {'/'.join(path)}"
                            )
                    parent = parent[segment]
                key = path[-1]
                kind = op.get("op")
                if kind in ("add", "replace"):
                    if kind == "replace" and key not in parent:
                        raise ApiError(
                            404, "resource_not_found", f"storage_not_found_error: {'/'.join(path)}"
                        )
                    parent[key] = op.get("value")
                elif kind == "remove":
                    if key not in parent:
                        raise ApiError(
                            404, "resource_not_found", f"storage_not_found_error: {'/'.join(path)}"
                        )
                    del parent[key]
                else:
                    raise ApiError(400, "invalid_parameter", f"bad patch operation {kind!r}")
            self._replace_data(data)

    def _replace_data(self, data: dict[str, Any]) -> None:
        try:
            self._replace(self.modules, data)
        except OpaError as exc:
            raise ApiError(400, "invalid_parameter", exc.message) from None

    # -- bundles ---------------------------------------------------------------------------------

    def activate_bundle(self, archive: bytes) -> str | None:
        """Activate a bundle (.tar.gz) atomically, like OPA's bundle plugin; returns its revision."""
        manifest: dict[str, Any] = {}
        modules: dict[str, str] = {}
        documents: list[tuple[list[str], Any]] = []
        try:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
                for member in tar.getmembers():
                    if not member.isfile():
                        continue
                    handle = tar.extractfile(member)
                    raw = handle.read() if handle else b""
                    name = member.name[2:] if member.name.startswith("./") else member.name
                    path = PurePosixPath("/" + name.lstrip("/"))
                    if path.name == ".manifest":
                        manifest = json.loads(raw)
                    elif path.suffix == ".rego":
                        modules[str(path).lstrip("/")] = raw.decode("utf-8")
                    elif path.name == "data.json":
                        documents.append(([p for p in path.parent.parts if p != "/"], json.loads(raw)))
        except (OSError, tarfile.TarError, ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"not a readable bundle: {exc}") from None
        roots = [r.split("/") for r in manifest.get("roots", [""]) if r is not None]
        roots = [r for r in roots if r != [""]]
        revision = manifest.get("revision")
        if manifest.get("rego_version", 1) != 1:
            raise BundleError("only rego_version 1 bundles are supported here")
        for module_id, source in modules.items():
            package = _package_path(source)
            if roots and not any(package[: len(r)] == r for r in roots):
                raise BundleError(f"{module_id}: package {'.'.join(package)} is outside the bundle roots")
        for segments, _ in documents:
            if roots and segments and not any(segments[: len(r)] == r for r in roots):
                raise BundleError(f"data at {'/'.join(segments)} is outside the bundle roots")
        with self.lock:
            new_modules = {k: v for k, v in self.modules.items() if k not in self.bundle_modules}
            new_modules.update(modules)
            data = copy.deepcopy(self.data)
            for root in self.bundle_roots + roots:  # the bundle owns its roots: replace what is there
                node: Any = data
                for segment in root[:-1]:
                    node = node.get(segment) if isinstance(node, dict) else None
                if isinstance(node, dict):
                    node.pop(root[-1], None)
            for segments, value in documents:
                if not segments:
                    if isinstance(value, dict):
                        for key, item in value.items():
                            data[key] = item
                    continue
                node = data
                for segment in segments[:-1]:
                    node = node.setdefault(segment, {})
                node[segments[-1]] = value
            try:
                self._replace(new_modules, data)
            except OpaError as exc:
                raise BundleError(f"bundle does not compile: {exc.message}") from None
            self.bundle_roots = roots
            self.bundle_modules = set(modules)
            self.bundle_revision = revision if isinstance(revision, str) else None
        return self.bundle_revision

    def clear(self) -> None:
        with self.lock:
            old, self._engine = self._engine, None
            self.modules, self.data = {}, {}
            self.bundle_roots, self.bundle_modules = [], set()
            self.bundle_revision = self.bundle_etag = None
            if old is not None:
                old.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        # Like Go's net/http (OPA): no Nagle delay between the header and body writes.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _send(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        return self._raw

    def _json_body(self) -> Any:
        raw = self._body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", f"body contains malformed JSON: {exc}") from None

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        owner.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(length) if length else b""  # always read: keep-alive needs it
        parts = urlsplit(self.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        try:
            if parts.path == "/_test/fault" and method == "POST":
                spec = self._json_body() or {}
                owner.fault = str(spec.get("mode", "none"))
                owner.delay = float(spec.get("delay", owner.delay))
                self._send(200, {})
                return
            if owner.fault == "slow":
                time.sleep(owner.delay)
            if owner.fault == "error":
                raise ApiError(500, "internal_error", "simulated OPA failure")
            if owner.token and self.headers.get("Authorization") != f"Bearer {owner.token}":
                raise ApiError(401, "unauthorized", "authentication failed")
            self._route(method, parts.path, params)
        except ApiError as exc:
            self._send(exc.status, exc.body())
        except OpaError as exc:
            self._send(500, {"code": "internal_error", "message": exc.message})
        except (BrokenPipeError, ConnectionResetError):
            return

    def _route(self, method: str, path: str, params: dict[str, list[str]]) -> None:
        owner = self.server.owner
        state = owner.state
        if path == "/health":
            ok = not ("bundles" in params and owner.expect_bundle and state.bundle_revision is None)
            self._send(200 if ok else 500, {} if ok else {"error": "not all bundles activated"})
            return
        if path.rstrip("/") == "/v1/policies" and method == "GET":
            with state.lock:
                result = [
                    {
                        "id": i,
                        "raw": s,
                        "ast": {"package": {"path": [{"value": p} for p in ["data", *_package_path(s)]]}},
                    }
                    for i, s in sorted(state.modules.items())
                ]
            self._send(200, {"result": result})
            return
        if path.startswith("/v1/policies/"):
            module_id = unquote(path[len("/v1/policies/") :])
            if method == "PUT":
                source = self._body().decode("utf-8")
                state.put_policy(module_id, source)
                self._send(200, {})
            elif method == "GET":
                with state.lock:
                    if module_id not in state.modules:
                        raise ApiError(
                            404, "resource_not_found", f'storage_not_found_error: policy id "{module_id}"'
                        )
                    self._send(200, {"result": {"id": module_id, "raw": state.modules[module_id]}})
            elif method == "DELETE":
                state.delete_policy(module_id)
                self._send(200, {})
            else:
                raise ApiError(405, "invalid_parameter", f"{method} is not allowed on policies")
            return
        if path == "/v1/data" or path.startswith("/v1/data/"):
            segments = _split(path[len("/v1/data") :])
            if method == "GET":
                defined, value = state.evaluate(segments, None, False)
                self._send(200, {"result": value} if defined else {})
            elif method == "POST":
                body = self._json_body()
                has_input = isinstance(body, dict) and "input" in body
                defined, value = state.evaluate(segments, body.get("input") if has_input else None, has_input)
                self._send(200, {"result": value} if defined else {})
            elif method == "PUT":
                state.put_data(segments, self._json_body())
                self._send(204)
            elif method == "PATCH":
                ops = self._json_body()
                if not isinstance(ops, list):
                    raise ApiError(400, "invalid_parameter", "a JSON patch must be a list of operations")
                state.patch_data(segments, ops)
                self._send(204)
            elif method == "DELETE":
                state.delete_data(segments)
                self._send(204)
            return
        if path == "/v1/query" and method == "POST":
            body = self._json_body() or {}
            query = body.get("query")
            if not isinstance(query, str) or not query.strip():
                raise ApiError(400, "invalid_parameter", "missing required 'query' value")
            rows = state.engine().eval_query(query, body.get("input"))
            self._send(200, {"result": rows} if rows else {})
            return
        raise ApiError(404, "resource_not_found", f"{method} {path} is not part of this OPA stand-in")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: OpaTestServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)


class OpaTestServer:
    """The test OPA server on a loopback port, started in a background thread."""

    def __init__(self, *, port: int = 0, token: str | None = None) -> None:
        self.state = OpaState()
        self.token = token
        self.fault = "none"  # "none" | "error" (500 on every call) | "slow" (sleep `delay` first)
        self.delay = 0.0
        self.requests = 0
        self.expect_bundle = False
        self.port = port
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OpaTestServer:
        if self._http is not None:
            return self
        self._http = _HttpServer(("127.0.0.1", self.port), self)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="opa-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """OPA goes down: no more connections, and the open ones are cut."""
        http, self._http = self._http, None
        if http is None:
            return
        http.shutdown()
        http.server_close()
        for conn in list(http.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def restart(self, *, clear: bool = True) -> None:
        """Stop and start on the same port; `clear` drops everything, as a restarted OPA would."""
        self.stop()
        if clear:
            self.state.clear()
        self.start()

    def close(self) -> None:
        self._stop_polling.set()
        self.stop()

    def __enter__(self) -> OpaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bundles ---------------------------------------------------------------------------------

    def load_bundle(self, path: str) -> str | None:
        """Like `opa run --server --bundle PATH`: activate a bundle file; returns its revision."""
        self.expect_bundle = True
        with open(path, "rb") as handle:
            return self.state.activate_bundle(handle.read())

    def fetch_bundle(self, url: str, *, timeout: float = 5.0) -> bool:
        """One poll of a bundle service (GET with If-None-Match); True when a new bundle was activated."""
        self.expect_bundle = True
        request = urllib.request.Request(url)
        if self.state.bundle_etag:
            request.add_header("If-None-Match", self.state.bundle_etag)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                archive = response.read()
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return False
            raise BundleError(f"bundle service answered HTTP {exc.code} for {url}") from None
        self.state.activate_bundle(archive)
        self.state.bundle_etag = etag
        return True

    def poll_bundle(
        self, url: str, interval: float, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Poll a bundle service in the background, like OPA's bundle plugin."""

        def loop() -> None:
            while not self._stop_polling.wait(interval):
                try:
                    self.fetch_bundle(url)
                except (BundleError, OSError) as exc:
                    if on_error:
                        on_error(exc)

        self._poller = threading.Thread(target=loop, name="opa-test-bundle-poll", daemon=True)
        self._poller.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    parser.add_argument("--bundle", help="bundle file to activate at start (like opa run --bundle)")
    parser.add_argument("--bundle-url", help="bundle service URL to fetch at start and poll")
    parser.add_argument("--poll", type=float, default=5.0, help="bundle polling interval in seconds")
    parser.add_argument("--token", help="require this bearer token")
    args = parser.parse_args(argv)
    server = OpaTestServer(port=args.port, token=args.token)
    try:
        if args.bundle:
            server.load_bundle(args.bundle)
        if args.bundle_url:
            server.fetch_bundle(args.bundle_url)
    except (BundleError, OSError) as exc:
        print(f"opa test server: cannot activate the bundle: {exc}", file=sys.stderr)
        return 2
    server.start()
    if args.bundle_url:
        server.poll_bundle(args.bundle_url, args.poll, lambda e: print(f"bundle poll: {e}", file=sys.stderr))
    print(f"listening {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
