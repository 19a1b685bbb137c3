"""Routing filter benchmark: table lookups vs engine calls, /v1/authz vs a no-op, nginx with vs without.

    .venv/bin/python bench/authz.py [--seconds 5] [--connections 32]

1. Decision-table lookups per second against one engine evaluation (Decider.decide) per request, both
   in this process on the default policy repo (ratio = lookup rate / engine rate).
2. `/v1/authz` requests per second on the real server app (HTTPS, uvicorn, one worker, audit on in a
   fresh PostgreSQL database) against a no-op GET endpoint added to the same app, under the same
   keep-alive load (ratio = authz rate / no-op rate).
3. Latency that nginx auth_request adds: the same nginx (deploy/proxies/nginx.conf rendered) with one
   server that asks policyengine and one that proxies straight to the same upstream; one request at a
   time, p50 and p99 of each, and the difference.
4. Where that added latency goes (`--only breakdown`): the same nginx in front of the upstream alone,
   /v1/authz with the audit row committed, /v1/authz with the audit writer detached, and a no-op endpoint
   over the same TLS hop, in turn; the differences split the added time into the hop, the judging and
   the durable audit row.

Needs PostgreSQL at 127.0.0.1:5432 and nginx (scripts/system-deps.sh). Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the end-to-end parts: upstreams, nginx and server starters

from databases import fresh_database  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from policyengine.decide import Decider  # noqa: E402
from policyengine.engine import make_engine  # noqa: E402
from policyengine.policy import load_policy  # noqa: E402
from policyengine.resources import default_policies  # noqa: E402
from policyengine.route import Route  # noqa: E402
from policyengine.routing.identity import parse_identity  # noqa: E402
from policyengine.routing.table import DecisionTable  # noqa: E402

POLICIES = default_policies()
CHECKOUT = "spiffe://acme.example/ns/shop/sa/checkout"
CATALOG_HOST = "catalog.shop.svc.clusterset.local"


def rate(fn: Any, seconds: float) -> tuple[float, int]:
    """Calls per second of fn over about `seconds`."""
    n, batch = 0, 100
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(batch):
            fn()
        n += batch
    return n / elapsed, n


def bench_table(seconds: float) -> None:
    policy = load_policy(POLICIES)
    decider = Decider(policy, make_engine("regorus"), cache_size=0)  # the baseline evaluates every time
    table = DecisionTable.build(policy, decider, "eu-1")
    identity = parse_identity(CHECKOUT, "bench")
    service = "shop/catalog"
    route = Route(
        service=service,
        source=decider.endpoint("eu-1", "shop/checkout", policy.classify("shop", "checkout", {}, {})),
        destination=decider.endpoint("eu-1", service, policy.classify("shop", "catalog", {}, {})),
    )
    decider.decide(route)
    lookups, _ = rate(lambda: table.lookup(identity, service, False), seconds)
    evaluations, _ = rate(lambda: decider.decide(route), seconds)
    print(f"table build: {table.size} answers in {table.build_seconds * 1e3:.1f} ms")
    print(
        f"table lookup: {lookups:,.0f}/s ({1e6 / lookups:.2f} us each); engine evaluation: "
        f"{evaluations:,.0f}/s ({1e6 / evaluations:.1f} us each); ratio {lookups / evaluations:,.0f}x"
    )


# -- HTTP load --------------------------------------------------------------------------------------


def serve_app(port: int, cert: str, key: str, db_url: str, audit: bool = True) -> None:
    """The real server app plus a no-op GET endpoint, on uvicorn over HTTPS (runs in a subprocess).

    With `audit=False` the writer is detached after startup: the filter's own cost, for comparison only.
    """
    import logging
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import APIRouter, FastAPI, Response

    from policyengine.api.app import create_app
    from policyengine.api.settings import Settings

    logging.disable(logging.WARNING)
    app = create_app(Settings(cluster="eu-1", policies=POLICIES, audit_url=db_url, log_level="warning"))

    @app.api_route("/bench/noop", methods=["GET", "HEAD"])
    async def noop() -> Response:
        return Response(status_code=200, headers={"x-policyengine-cluster": "eu-1"})

    if not audit:

        @asynccontextmanager
        async def detach_audit(app_: FastAPI) -> AsyncIterator[None]:
            app_.state.pe.audit = None
            yield

        app.include_router(APIRouter(lifespan=detach_audit))

    uvicorn.run(app, host="127.0.0.1", port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning")


async def _connection(host: str, port: int, ctx: ssl.SSLContext | None, request: bytes, until: float) -> list[float]:
    """One keep-alive connection sending `request` until `until`; reconnects when the server closes it."""
    latencies: list[float] = []
    while time.perf_counter() < until:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if status not in (200, 403):
                    raise RuntimeError(f"unexpected status {status}")
                latencies.append(time.perf_counter() - started)
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass  # the server ended the keep-alive connection (nginx keepalive_requests): reconnect
        finally:
            writer.close()
    return latencies


def _load_worker(args: tuple[str, int, str | None, bytes, float, int]) -> list[float]:
    host, port, ca, request, seconds, connections = args
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    if ctx is not None:
        ctx.check_hostname = False

    async def run() -> list[float]:
        until = time.perf_counter() + seconds
        results = await asyncio.gather(*(_connection(host, port, ctx, request, until) for _ in range(connections)))
        return [x for r in results for x in r]

    import uvloop

    return uvloop.run(run())


def load(port: int, ca: str | None, request: bytes, seconds: float, connections: int, processes: int) -> list[float]:
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        jobs = [("127.0.0.1", port, ca, request, seconds, max(1, connections // processes))] * processes
        return [x for r in pool.map(_load_worker, jobs) for x in r]


def http_get(path: str, host: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def bench_server(seconds: float, connections: int, db_url: str, tmp: Path, audit: bool = True) -> None:
    from routing.proxy_parts import free_port

    from policyengine.api.tls import make_dev_certificates

    certs = make_dev_certificates(tmp / "tls")
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_app, args=(port, str(certs.cert), str(certs.key), db_url, audit), daemon=True
    )
    server.start()
    try:
        _wait_ready(port, str(certs.ca_cert), "/readyz" if audit else "/healthz")
        authz = http_get(
            "/v1/authz",
            CATALOG_HOST,
            f"X-Original-URI: /x\r\nX-Original-Method: GET\r\nX-Policyengine-Source: {CHECKOUT}\r\n",
        )
        noop = http_get("/bench/noop", CATALOG_HOST)
        ca = str(certs.ca_cert)
        load(port, ca, authz, 1.0, connections, 1)  # warm-up
        rows_before = _routing_rows(db_url)
        noop_lat = load(port, ca, noop, seconds, connections, 1)
        authz_lat = load(port, ca, authz, seconds, connections, 1)
        rows = _routing_rows(db_url) - rows_before
        noop_rate, authz_rate = len(noop_lat) / seconds, len(authz_lat) / seconds
        label = "with audit (PostgreSQL)" if audit else "WITHOUT audit (comparison only)"
        print(
            f"/v1/authz {label}: {authz_rate:,.0f} req/s (p50 {_pct(authz_lat, 50):.2f} ms); "
            f"no-op endpoint: {noop_rate:,.0f} req/s (p50 {_pct(noop_lat, 50):.2f} ms); "
            f"ratio {authz_rate / noop_rate:.2f}; audit rows {rows} for {len(authz_lat)} authz requests"
        )
    finally:
        server.terminate()
        server.join(10)


def _wait_ready(port: int, ca: str, path: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    ctx = ssl.create_default_context(cafile=ca)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"https://127.0.0.1:{port}{path}", verify=ctx, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def _routing_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM audit_decision WHERE source = 'routing'")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def _pct(latencies: list[float], p: int) -> float:
    if not latencies:
        return float("nan")
    return statistics.quantiles(latencies, n=100)[p - 1] * 1e3 if len(latencies) > 1 else latencies[0] * 1e3


def bench_nginx(seconds: float, db_url: str, tmp: Path) -> None:
    from routing.proxy_parts import NGINX_TEMPLATE, free_port, start_nginx, start_policyengine, upstreams

    template = tmp / "nginx-bench.conf"
    direct_port = free_port()
    text_ = NGINX_TEMPLATE.read_text().rstrip()
    assert text_.endswith("}")
    direct = (
        f"\n    server {{\n        listen 127.0.0.1:{direct_port};\n"
        "        location / {\n            proxy_pass http://cluster_eu_1;\n"
        '            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
        "            proxy_set_header Host $host;\n        }\n    }\n}\n"
    )
    template.write_text(text_[:-1] + direct)
    with upstreams("eu-1", "us-1") as clusters:
        (tmp / "pe").mkdir(exist_ok=True)
        server = start_policyengine(tmp / "pe", db_url)
        try:
            nginx = start_nginx(
                tmp / "nginx",
                {
                    "AUTHZ": f"127.0.0.1:{server.port}",
                    "AUTHZ_NAME": "localhost",
                    "AUTHZ_CA": str(server.ca),
                    "EU_1": clusters["eu-1"].address,
                    "US_1": clusters["us-1"].address,
                },
                template=template,
            )
            try:
                request = http_get("/orders/7", CATALOG_HOST, f"X-Policyengine-Source: {CHECKOUT}\r\n")
                load(nginx.port, None, request, 1.0, 1, 1)  # warm-up
                load(direct_port, None, request, 1.0, 1, 1)
                with_authz = load(nginx.port, None, request, seconds, 1, 1)
                without = load(direct_port, None, request, seconds, 1, 1)
            finally:
                nginx.stop()
        finally:
            server.stop()
    a50, a99, d50, d99 = _pct(with_authz, 50), _pct(with_authz, 99), _pct(without, 50), _pct(without, 99)
    print(
        f"nginx with auth_request: p50 {a50:.3f} ms, p99 {a99:.3f} ms; without: p50 {d50:.3f} ms, "
        f"p99 {d99:.3f} ms; added p50 {a50 - d50:.3f} ms, p99 {a99 - d99:.3f} ms; "
        f"ratio p50 {a50 / d50:.2f}, p99 {a99 / d99:.2f}"
    )


# The subrequest of deploy/proxies/nginx.conf (HEAD, only the headers set here, TLS keep-alive to
# policyengine) without the gateway's own client-certificate TLS: the caller's identity comes in
# x-policyengine-source, so the figures are the auth_request hop alone. One server proxies straight
# to the same upstream (nginx alone).
BREAKDOWN_NGINX = """events { worker_connections 256; }
http {
    access_log off;
    upstream cluster_eu_1 { server @@EU_1@@; keepalive 16; }
    upstream policyengine { server @@AUTHZ@@; keepalive 32; }
    server {
        listen @@LISTEN@@;
        location / {
            auth_request /_policyengine/authz;
            auth_request_set $pe_cluster $upstream_http_x_policyengine_cluster;
            proxy_pass http://cluster_eu_1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Policyengine-Cluster $pe_cluster;
        }
        location = /_policyengine/authz {
            internal;
            proxy_pass https://policyengine@@AUTHZ_PATH@@;
            proxy_method HEAD;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Policyengine-Source $http_x_policyengine_source;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate @@AUTHZ_CA@@;
            proxy_ssl_name @@AUTHZ_NAME@@;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }
    server { # direct
        listen 127.0.0.1:@@DIRECT_PORT@@;
        location / {
            proxy_pass http://cluster_eu_1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
"""


def bench_nginx_breakdown(seconds: float, db_url: str, tmp: Path, rounds: int = 5) -> None:
    """Where auth_request's added latency goes: the same nginx, one request at a time, in turn over
    `rounds` rounds, in front of (a) the upstream alone, (b) /v1/authz with the audit row committed
    (PostgreSQL) before the answer, (c) /v1/authz with the audit writer detached, (d) a no-op endpoint of
    the same server over the same TLS keep-alive hop. (b)-(c) is the durable audit row on the answer
    path, (c)-(d) the filter's judging and endpoint code, (d)-(a) the subrequest hop itself: nginx's
    subrequest, TLS, uvicorn's HTTP parsing and the framework's floor."""
    from routing.proxy_parts import free_port, start_nginx, upstreams

    from policyengine.api.tls import make_dev_certificates

    certs = make_dev_certificates(tmp / "tls-breakdown")
    context = multiprocessing.get_context("spawn")
    ports = {"audit": free_port(), "no-audit": free_port()}
    servers = [
        context.Process(
            target=serve_app,
            args=(port, str(certs.cert), str(certs.key), db_url, name == "audit"),
            daemon=True,
        )
        for name, port in ports.items()
    ]
    for server in servers:
        server.start()
    direct_port = free_port()
    template = tmp / "nginx-breakdown.conf"
    template.write_text(BREAKDOWN_NGINX.replace("@@DIRECT_PORT@@", str(direct_port)))
    nginxes = []
    try:
        _wait_ready(ports["audit"], str(certs.ca_cert), "/readyz")
        _wait_ready(ports["no-audit"], str(certs.ca_cert), "/healthz")
        with upstreams("eu-1", "us-1") as clusters:
            base = {"AUTHZ_NAME": "localhost", "AUTHZ_CA": str(certs.ca_cert)}
            base |= {"EU_1": clusters["eu-1"].address}
            authz = {"AUTHZ_PATH": "/v1/authz"}
            audited = start_nginx(tmp / "nginx-a", {**base, **authz, "AUTHZ": f"127.0.0.1:{ports['audit']}"}, template)
            template_b = tmp / "nginx-breakdown-b.conf"  # the others without the direct server
            template_b.write_text(BREAKDOWN_NGINX.split("    server { # direct")[0] + "}\n")
            unaudited = start_nginx(
                tmp / "nginx-b", {**base, **authz, "AUTHZ": f"127.0.0.1:{ports['no-audit']}"}, template_b
            )
            noop = {"AUTHZ_PATH": "/bench/noop"}
            floor = start_nginx(tmp / "nginx-c", {**base, **noop, "AUTHZ": f"127.0.0.1:{ports['audit']}"}, template_b)
            nginxes = [audited, unaudited, floor]
            request = http_get("/orders/7", CATALOG_HOST, f"X-Policyengine-Source: {CHECKOUT}\r\n")
            variants = {
                "nginx alone": direct_port,
                "auth_request, audit row committed": audited.port,
                "auth_request, audit writer detached": unaudited.port,
                "auth_request to a no-op endpoint": floor.port,
            }
            measured: dict[str, list[float]] = {name: [] for name in variants}
            for port in variants.values():
                load(port, None, request, 0.5, 1, 1)  # warm-up
            for _ in range(rounds):  # in turn, so a noisy moment hits every variant alike
                for name, port in variants.items():
                    measured[name] += load(port, None, request, seconds / rounds, 1, 1)
    finally:
        for nginx in nginxes:
            nginx.stop()
        for server in servers:
            server.terminate()
            server.join(10)
    p50 = {name: _pct(lat, 50) for name, lat in measured.items()}
    for name, lat in measured.items():
        print(f"{name}: p50 {p50[name]:.3f} ms, p99 {_pct(lat, 99):.3f} ms ({len(lat)} requests)")
    alone = p50["nginx alone"]
    full = p50["auth_request, audit row committed"]
    detached = p50["auth_request, audit writer detached"]
    hop = p50["auth_request to a no-op endpoint"]
    print(
        f"added by auth_request: {full - alone:.3f} ms at p50 = subrequest hop (nginx, TLS, uvicorn, framework) "
        f"{hop - alone:.3f} ms + judging and endpoint {detached - hop:.3f} ms + durable audit row "
        f"{full - detached:.3f} ms; ratio with/without nginx alone {full / alone:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=["table", "server", "nginx", "breakdown"], default=None)
    args = parser.parse_args()
    print(f"# bench/authz.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.only in (None, "table"):
        bench_table(min(args.seconds, 3.0))
    if args.only == "table":
        return
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="pe-bench-") as tmp:
        if args.only in (None, "server"):
            bench_server(args.seconds, args.connections, url, Path(tmp))
            bench_server(args.seconds, args.connections, url, Path(tmp), audit=False)
        if args.only in (None, "nginx"):
            bench_nginx(args.seconds, url, Path(tmp))
        if args.only in (None, "breakdown"):
            bench_nginx_breakdown(args.seconds * 2, url, Path(tmp))


if __name__ == "__main__":
    main()
