"""Two checkouts served side by side: the server's CPU time per request and its throughput, end to end.

    .venv/bin/python bench/side_by_side.py --old ../old-checkout [--new .] [--endpoint authz|validate|echo]
        [--rounds 8] [--seconds 3] [--connections 8]

How an audit-path change is judged (issue #13: "no worse than today's, measured side by side in one
run"). Each tree serves from its own `.venv` (`make venv` there) with PostgreSQL audit in a fresh
database on 127.0.0.1:5432, one worker, development certificates, the default policy. The load is `wrk`
(apt-get install wrk: a C client, so the Python server is the bottleneck, not the client) on
`--connections` keep-alive TLS connections for `--seconds`: `/validate` and `/echo` post
examples/admission/create-httproute-profile.json, `/v1/authz` asks for shop/checkout -> catalog. The
server's CPU is read from /proc/<pid>/task/*/stat around each run. Both servers stay up; each round
loads one, then the other (old-new, then new-old: a drift of the machine hits both alike), `--rounds`
times, and prints their CPU per request and its ratio; the medians are printed last. Not in `make
bench`: it needs a second checkout.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REVIEW = REPO / "examples" / "admission" / "create-httproute-profile.json"
PG = ("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc")
AUTHZ_HEADERS = (
    "host: catalog.shop.svc.clusterset.local",
    "x-original-uri: /x",
    "x-original-method: GET",
    "x-policyengine-source: spiffe://acme.example/ns/shop/sa/checkout",
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Both servers run on the last CPU and wrk on the first (with 2 CPUs: PostgreSQL takes what is left), so
# the scheduler moves neither server around while it is measured.
_LAST_CPU = str(max(os.sched_getaffinity(0)))
PIN_SERVER = ("taskset", "-c", _LAST_CPU) if len(os.sched_getaffinity(0)) > 1 and shutil.which("taskset") else ()
PIN_CLIENT = ("taskset", "-c", "0") if PIN_SERVER else ()


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of `pid`."""
    ticks = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def serve(tree: Path, port: int, scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`tree`'s server on `port` with audit in a fresh PostgreSQL database, once ready."""
    database = "side_" + uuid.uuid4().hex[:10]
    subprocess.run([*PG, f"create database {database}"], check=True)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    python = str(tree / ".venv" / "bin" / "python")
    subprocess.run([str(tree / ".venv" / "bin" / "policyengine"), "db", "upgrade", "--db", url],
                   check=True, cwd=tree, stdout=subprocess.DEVNULL)  # fmt: skip
    policies = (
        subprocess.check_output(
            [python, "-c", "from policyengine.resources import default_policies; print(default_policies())"], cwd=tree
        )
        .decode()
        .strip()
    )
    log = (scratch / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [*PIN_SERVER, python, "-m", "policyengine.cli.serve", "--cluster", "eu-1", "--policies", policies, "--db", url,
         "--spool-dir", str(scratch / f"spool-{port}"), "--host", "127.0.0.1", "--port", str(port),
         "--dev-certs", "--dev-certs-dir", str(scratch / f"certs-{port}"), "--echo-endpoint"],
        cwd=tree, stdout=log, stderr=log,
    )  # fmt: skip
    context = ssl._create_unverified_context()  # the development CA of this run only
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process, database
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{tree} did not get ready: see {log.name}")


def wrk(port: int, endpoint: str, seconds: float, connections: int, scratch: Path) -> int:
    """Requests `wrk` completed against `endpoint` (any 5xx, or a non-2xx from /validate, stops the run)."""
    if endpoint == "authz":
        args = [a for h in AUTHZ_HEADERS for a in ("-H", h)] + [f"https://127.0.0.1:{port}/v1/authz"]
    else:
        script = scratch / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
            f'wrk.body = io.open("{REVIEW}"):read("*a")\n'
        )
        args = ["-s", str(script), f"https://127.0.0.1:{port}/{endpoint}"]
    out = subprocess.run(
        [*PIN_CLIENT, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out and endpoint != "authz":
        raise SystemExit(out)
    return int(out.split(" requests in ")[0].split()[-1])


def measure(
    process: subprocess.Popen[bytes], port: int, args: argparse.Namespace, scratch: Path
) -> tuple[float, float]:
    """(ms of server CPU per request, requests per second) of one `wrk` run against a served tree."""
    cpu, started = cpu_seconds(process.pid), time.perf_counter()
    requests = wrk(port, args.endpoint, args.seconds, args.connections, scratch)
    cpu, elapsed = cpu_seconds(process.pid) - cpu, time.perf_counter() - started
    return cpu / requests * 1000, requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the checkout to compare against")
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--endpoint", choices=("authz", "validate", "echo"), default="authz")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install wrk")
    scratch = Path(tempfile.mkdtemp(prefix="policyengine-side-by-side-"))
    trees = {"old": (args.old.resolve(), 18443), "new": (args.new.resolve(), 18444)}
    served = {name: serve(tree, port, scratch) for name, (tree, port) in trees.items()}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    rate: dict[str, list[float]] = {"old": [], "new": []}
    ratios: list[float] = []
    try:
        for _, port in trees.values():  # warm: imports, caches, connections
            wrk(port, args.endpoint, 2, args.connections, scratch)
        for n in range(args.rounds):
            order = ("old", "new") if n % 2 == 0 else ("new", "old")  # ABBA: a drift hits both alike
            for name in order:
                ms, rps = measure(served[name][0], trees[name][1], args, scratch)
                cpu[name].append(ms)
                rate[name].append(rps)
            ratios.append(cpu["new"][-1] / cpu["old"][-1])
            print(
                f"round {n}: old {cpu['old'][-1]:.3f} ms CPU/request ({rate['old'][-1]:,.0f}/s), "
                f"new {cpu['new'][-1]:.3f} ({rate['new'][-1]:,.0f}/s), new / old {ratios[-1]:.2f}",
                flush=True,
            )
    finally:
        for process, database in served.values():
            process.terminate()
            process.wait(30)
            subprocess.run([*PG, f"drop database {database}"], check=True)
    old, new = statistics.median(cpu["old"]), statistics.median(cpu["new"])
    old_rate, new_rate = statistics.median(rate["old"]), statistics.median(rate["new"])
    print(
        f"{args.endpoint}: CPU per request {old:.3f} -> {new:.3f} ms, median of the rounds' new / old "
        f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); requests/s "
        f"{old_rate:,.0f} -> {new_rate:,.0f} (new / old {new_rate / old_rate:.2f})"
    )


if __name__ == "__main__":
    sys.exit(main())
