"""Oversized requests are refused before they cost memory: a head over the size or header-count limit
gets 431, a body over its endpoint's limit 413 before it is read (a declared Content-Length) or as soon
as it passes the limit (streamed), and the server process stays under the Deployment's memory limit
while 20 clients send 400 MiB bodies at once.

On the code before these limits a 50 MB header and 100,000 headers both got 200, and /v1/decide read
the whole body before its 64 KiB check: a 400 MiB body took the process to 824 MB."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from pathlib import Path

import pytest
import raw_http
import yaml
from webhook.harness import REPO, Server, review, ssl_context
from webhook.objects import http_route

from edges.conftest import tracebacks

MIB = 1024 * 1024
GOOD = json.dumps(review(http_route("shop", "profile"))).encode()


def memory_limit_bytes() -> int:
    """The container memory limit of deploy/base/deployment.yaml (512Mi)."""
    deployment = yaml.safe_load((REPO / "deploy" / "base" / "deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    limit = str(next(c for c in containers if c["name"] == "policyengine")["resources"]["limits"]["memory"])
    assert limit.endswith("Mi"), limit
    return int(limit[:-2]) * MIB


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn workers), from /proc."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def HEADERS(count: int) -> bytes:
    return b"".join(b"x-%d: 1\r\n" % n for n in range(count))


def send_head(server: Server, head: bytes) -> raw_http.Answer | None:
    """Send a request head in pieces (the server may close mid-way) and read what it answers."""
    with raw_http.connect(server.port, ssl_context(server.ca), timeout=60) as sock:
        try:
            for start in range(0, len(head), 64 * 1024):
                sock.sendall(head[start : start + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        return raw_http.read_answer(sock, "GET")


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("a 4 MiB header", b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (4 * MIB) + b"\r\n\r\n"),
        ("100,000 headers", b"GET /healthz HTTP/1.1\r\nHost: l\r\n" + HEADERS(100_000) + b"\r\n"),
        ("129 headers", b"GET /healthz HTTP/1.1\r\nHost: l\r\n" + HEADERS(128) + b"\r\n"),
        ("a 70 KiB URL", b"GET /healthz?" + b"q" * (70 * 1024) + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ],
)
def test_a_head_over_the_limits_is_refused_with_431(server: Server, name: str, head: bytes) -> None:
    answer = send_head(server, head)
    assert answer is not None, "closed without an answer"
    assert answer.status == 431, (answer.status, answer.text)
    assert "64" in answer.text or "128" in answer.text  # the message names the limit
    assert server.client.get("/healthz").status_code == 200
    assert tracebacks(server) == []


def test_heads_within_the_limits_pass(server: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: l\r\n" + HEADERS(100) + b"\r\n"
    answer = send_head(server, head)
    assert answer is not None and answer.status == 200


def test_decide_refuses_a_declared_400_mib_body_before_reading_it(server: Server) -> None:
    head = (
        "POST /v1/decide HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {400 * MIB}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with raw_http.connect(server.port, ssl_context(server.ca)) as sock:
        sock.sendall(head + b"{")
        answer = raw_http.read_answer(sock)
    assert answer is not None and answer.status == 413, answer
    assert str(400 * MIB) in answer.text and "65536" in answer.text
    assert answer.headers.get("connection") == "close"
    assert time.monotonic() - started < 5


async def upload(server: Server, path: str, size: int, declared: bool) -> int | None:
    """Stream a `size`-byte body (declared, or chunked) until the server answers or closes; its status."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ssl_context(server.ca), server_hostname="localhost"
    )
    framing = f"Content-Length: {size}" if declared else "Transfer-Encoding: chunked"
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    writer.write(head.encode())
    piece = b"[" + b"0," * (MIB // 2 - 1) + b"0"
    chunk = piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece)

    async def stream() -> None:
        sent = 0
        while sent < size:
            writer.write(chunk)
            await writer.drain()
            sent += len(piece)

    streaming = asyncio.create_task(stream())
    status = None
    try:
        line = await asyncio.wait_for(reader.readline(), 120)
        if line.startswith(b"HTTP/1.1 "):
            status = int(line.split()[1])
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
        pass
    streaming.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError, ssl.SSLError):
        await streaming
    writer.close()
    return status


def test_memory_stays_under_the_deployment_limit_while_20_clients_send_400_mib(server: Server) -> None:
    """20 clients at once (/v1/decide and /validate, declared and chunked, /v1/authz, which reads no
    body); the server's RSS is sampled every 20 ms. If it ever passes the limit the test stops."""
    limit = memory_limit_bytes()
    pid = server.process.pid
    peak = rss_bytes(pid)
    over = threading.Event()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            if peak > limit:
                over.set()
                server.process.kill()  # stop here rather than take the machine's memory
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    targets = [
        ("/v1/decide", True), ("/v1/decide", False), ("/validate", True), ("/validate", False), ("/v1/authz", True),
    ]  # fmt: skip

    async def clients() -> list[int | None]:
        sends = [targets[n % len(targets)] for n in range(20)]
        return await asyncio.gather(*(upload(server, path, 400 * MIB, declared) for path, declared in sends))

    try:
        statuses = asyncio.run(clients())
    finally:
        done.set()
        sampler.join(5)
    assert not over.is_set(), f"the server took {peak / MIB:.0f} MiB, over the limit of {limit / MIB:.0f} MiB"
    print(f"peak RSS {peak / MIB:.0f} MiB (limit {limit / MIB:.0f} MiB); answers {sorted(map(str, statuses))}")
    assert peak < limit
    assert {s for s in statuses if s is not None} <= {413, 403}, statuses
    assert server.client.get("/healthz").status_code == 200
    good = server.client.post("/validate", content=GOOD, headers={"content-type": "application/json"})
    assert good.status_code == 200
    assert tracebacks(server) == []
