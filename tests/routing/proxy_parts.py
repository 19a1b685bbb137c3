"""Real parts of the end-to-end tests: cluster upstreams on loopback, `policyengine serve` as a
subprocess over HTTPS, and nginx (Debian nginx-light) rendered from deploy/proxies/nginx.conf."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from routing.parts import POLICIES, REPO

NGINX_TEMPLATE = REPO / "deploy" / "proxies" / "nginx.conf"
SERVE_COMMAND = (sys.executable, "-m", "policyengine.cli.main", "serve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ClusterUpstream:
    """A cluster's endpoint: an HTTP server on loopback that answers with the cluster's name."""

    name: str
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> ClusterUpstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                upstream.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = upstream.name.encode()
                # One write for head and body: two small writes meet Nagle and delayed ACK (40 ms).
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                )

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class PolicyEngineServer:
    """`policyengine serve` in a subprocess, HTTPS with development certificates."""

    process: subprocess.Popen[bytes]
    port: int
    ca: Path
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_policyengine(
    tmp: Path, db_url: str, cluster: str = "eu-1", extra: tuple[str, ...] = ()
) -> PolicyEngineServer:
    port = free_port()
    certs = tmp / "tls"
    log = tmp / "policyengine.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            *SERVE_COMMAND,
            "--cluster",
            cluster,
            "--policies",
            str(POLICIES),
            "--db",
            db_url,
            "--port",
            str(port),
            "--dev-certs",
            "--dev-certs-dir",
            str(certs),
            "--log-level",
            "warning",
            *extra,
        ],
        cwd=tmp,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    server = PolicyEngineServer(process, port, certs / "ca.crt", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"policyengine serve exited with {process.returncode}:\n{log.read_text()}")
        if server.ca.exists():
            try:
                answer = httpx.get(f"{server.url}/readyz", verify=server.ssl_context(), timeout=2)
                if answer.status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"policyengine serve did not become ready in 60 s:\n{log.read_text()}")


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx is not installed: run scripts/system-deps.sh (installs Debian nginx-light)")
    version = subprocess.run([found, "-V"], capture_output=True, text=True).stderr
    if "--with-http_auth_request_module" not in version:
        pytest.fail(f"{found} lacks the auth_request module: install Debian nginx-light or nginx")
    return found


def render_nginx(template: Path, prefix: Path, values: dict[str, str]) -> Path:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    unfilled = [line for line in text.splitlines() if "@@" in line and not line.lstrip().startswith("#")]
    assert not unfilled, f"placeholders of the nginx template not filled: {unfilled}"
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def start_nginx(prefix: Path, values: dict[str, str], template: Path = NGINX_TEMPLATE) -> Nginx:
    binary = nginx_binary()
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    conf = render_nginx(template, prefix, {"PREFIX": str(prefix), "LISTEN": f"127.0.0.1:{port}", **values})
    globals_ = f"daemon off; pid {prefix}/nginx.pid; error_log stderr;"
    if os.geteuid() == 0:
        globals_ += " user root;"  # workers must reach the unix socket and temp dirs in tmp_path
    log = (prefix / "nginx.log").open("wb")
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-g", globals_], stdout=log, stderr=subprocess.STDOUT
    )
    nginx = Nginx(process, port, prefix)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{(prefix / 'nginx.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return nginx
        except OSError:
            time.sleep(0.05)
    nginx.stop()
    pytest.fail(f"nginx did not listen in 15 s:\n{(prefix / 'nginx.log').read_text()}")


@contextmanager
def upstreams(*names: str) -> Iterator[dict[str, ClusterUpstream]]:
    started = {name: ClusterUpstream(name).start() for name in names}
    try:
        yield started
    finally:
        for upstream in started.values():
            upstream.stop()


def connections_to(port: int) -> dict[int, str]:
    """Every TCP connection to the server listening on 127.0.0.1:`port`, open or recently closed (either
    end in TIME_WAIT), read from /proc/net/tcp: the client's port -> the state (hex: 01 established,
    06 time-wait, ...) of whichever end this machine lists first."""
    connections: dict[int, str] = {}
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            if state == "0A":  # LISTEN
                continue
            if local == port:
                connections.setdefault(remote, state)
            elif remote == port:
                connections.setdefault(local, state)
    return connections
