"""Benchmark of the admission webhook over HTTPS on loopback.

Starts `policyengine serve` (dev certificates, audit on in a fresh PostgreSQL database at 127.0.0.1:5432
with `--db postgresql`, the default, or in a SQLite file with `--db sqlite`; the default policy repo,
one worker) and
drives it from a separate load-generator process (asyncio, keep-alive TLS connections, pre-encoded
requests): a realistic HTTPRoute AdmissionReview against /validate (decided, audited, refused), and
the same review against /echo, which only parses and echoes it (the stack's floor: TLS, HTTP, FastAPI,
AdmissionReview parsing). For each: throughput (closed loop, 16 connections) and p50/p99 latency at
fixed arrival rates of 200 and 500 requests/s (open loop: latency counts from the scheduled send time,
so a stall is not hidden). Prints the ratios to the floor.

    .venv/bin/python bench/webhook.py [--seconds 10] [--db postgresql|sqlite] [--compare-protocols]

With --compare-protocols the whole measurement runs twice in one run, on the server's HTTP protocol
(uvicorn's httptools protocol with header/body timeouts and head limits, policyengine/api/protocol.py)
and on uvicorn's own protocol (`serve --stock-http`), and prints the ratios: the cost of the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from databases import fresh_database

from policyengine.resources import default_policies

REPO = Path(__file__).resolve().parents[1]
REVIEW = REPO / "examples" / "admission" / "create-httproute-profile.json"
CONNECTIONS = 16


# -- the load generator (runs in its own process) ----------------------------------------------------
async def _connect(host: str, port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _closed_loop(host: str, port: int, context: ssl.SSLContext, request: bytes, seconds: float) -> dict[str, Any]:
    stop = time.perf_counter() + seconds
    done = 0
    bad = 0

    async def worker() -> None:
        nonlocal done, bad
        reader, writer = await _connect(host, port, context)
        while time.perf_counter() < stop:
            if await _exchange(reader, writer, request) != 200:
                bad += 1
            done += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return {"rps": done / (time.perf_counter() - started), "requests": done, "errors": bad}


async def _open_loop(
    host: str, port: int, context: ssl.SSLContext, request: bytes, rate: float, seconds: float
) -> dict[str, Any]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await _connect(host, port, context))
    latencies: list[float] = []
    bad = 0

    async def one(scheduled: float) -> None:
        nonlocal bad
        conn = await pool.get()
        if await _exchange(*conn, request) != 200:
            bad += 1
        latencies.append(time.perf_counter() - scheduled)
        pool.put_nowait(conn)

    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"rate": rate, "requests": total, "errors": bad, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}


def load_main(argv: list[str]) -> None:
    host, port, path, body_file, ca, mode, rate, seconds = argv
    body = Path(body_file).read_bytes()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    context = ssl.create_default_context(cafile=ca)
    try:
        import uvloop  # the client's TLS in C, so the client is not the bottleneck

        uvloop.install()
    except ImportError:
        pass
    if mode == "closed":
        result = asyncio.run(_closed_loop(host, int(port), context, request, float(seconds)))
    else:
        result = asyncio.run(_open_loop(host, int(port), context, request, float(rate), float(seconds)))
    print(json.dumps(result))


# -- the orchestration --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_load(port: int, path: str, ca: Path, mode: str, rate: float, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", "127.0.0.1", str(port), path, str(REVIEW), str(ca), mode,
         str(rate), str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--eval-threads", type=int, default=0, help="passed to serve (0: evaluate on the loop)")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql", help="the audit store")
    parser.add_argument("--compare-protocols", action="store_true", help="also on uvicorn's own protocol")
    args = parser.parse_args()
    from policyengine.api.tls import make_dev_certificates

    store = "PostgreSQL" if args.db == "postgresql" else "SQLite"
    runs = [("guarded", ())] + ([("stock", ("--stock-http",))] if args.compare_protocols else [])
    measured: dict[str, dict[str, dict[str, Any]]] = {}
    for protocol, flags in runs:
        tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
        certs = make_dev_certificates(tmp / "tls")
        with fresh_database(args.db) as audit:
            results, rows = measure(args, tmp, certs, audit, flags)
        print(f"== HTTP protocol: {protocol}")
        report(results, rows, store, args.eval_threads)
        measured[protocol] = results
    if args.compare_protocols:
        guarded, stock = measured["guarded"], measured["stock"]
        for name in guarded:
            rps = guarded[name]["throughput"]["rps"] / stock[name]["throughput"]["rps"]
            p99 = guarded[name][500]["p99_ms"] / stock[name][500]["p99_ms"]
            print(f"guarded : stock protocol, {name}: throughput {rps:.2f}, p99 at 500 req/s {p99:.2f}")


def measure(
    args: argparse.Namespace, tmp: Path, certs: Any, audit: str, flags: tuple[str, ...] = ()
) -> tuple[dict[str, dict[str, Any]], int]:
    """Serve on `audit`, then the closed- and open-loop loads; the results and the audit rows written."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "policyengine.cli.serve", "--cluster", "eu-1", "--policies", str(default_policies()),
         "--db", audit, "--spool-dir", str(tmp / "spool"), "--port", str(port), "--tls-cert", str(certs.cert),
         "--tls-key", str(certs.key), "--echo-endpoint", "--log-level", "warning",
         "--eval-threads", str(args.eval_threads), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        for _ in range(300):
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), 1) as raw,
                    context.wrap_socket(raw, server_hostname="localhost"),
                ):
                    break
            except OSError:
                time.sleep(0.1)
        run_load(port, "/validate", certs.ca_cert, "closed", 0, 2)  # warm-up
        results: dict[str, dict[str, Any]] = {}
        for name, path in (("floor /echo", "/echo"), ("/validate", "/validate")):
            results[name] = {"throughput": run_load(port, path, certs.ca_cert, "closed", 0, args.seconds)}
            for rate in (200, 500):
                results[name][rate] = run_load(port, path, certs.ca_cert, "open", rate, args.seconds)
        rows = int(
            subprocess.run(
                [sys.executable, "-c", f"import sqlalchemy as sa; e=sa.create_engine({audit!r}); "
                 "print(e.connect().execute(sa.text('select count(*) from audit_decision')).scalar())"],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)
    return results, rows


def report(results: dict[str, dict[str, Any]], rows: int, store: str, eval_threads: int) -> None:
    print(
        f"policyengine webhook over HTTPS on loopback, 1 worker, audit on ({store}), {os.cpu_count()} CPUs, "
        f"eval threads {eval_threads}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'endpoint':<14}{'req/s (16 conns)':>18}{'p50@200':>10}{'p99@200':>10}{'p50@500':>10}{'p99@500':>10}")
    for name, r in results.items():
        print(
            f"{name:<14}{r['throughput']['rps']:>18.0f}{r[200]['p50_ms']:>9.2f}m{r[200]['p99_ms']:>9.2f}m"
            f"{r[500]['p50_ms']:>9.2f}m{r[500]['p99_ms']:>9.2f}m"
        )
    floor, webhook = results["floor /echo"], results["/validate"]
    errors = sum(r[k]["errors"] for r in results.values() for k in ("throughput", 200, 500))
    print(f"throughput ratio /validate : floor = {webhook['throughput']['rps'] / floor['throughput']['rps']:.2f}")
    print(f"p99 ratio at 500 req/s /validate : floor = {webhook[500]['p99_ms'] / floor[500]['p99_ms']:.2f}")
    print(f"audit rows written: {rows}; non-200 answers: {errors}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
    else:
        main()
