"""A served instance for the reliability suite: `policyengine serve` in a subprocess over HTTPS with its
audit trail in a given database (a private PostgreSQL to stop and freeze, or SQLite) and its spool in a
given directory, and the requests the suite sends it.

Only HTTP and the database are used to judge the server (which decision ids it gave out, which rows
the database holds, whether verify agrees), so the same tests run against any version of it.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from audit.own_postgres import stored_ids
from webhook.harness import copy_policies, free_port, ssl_context

from policyengine.api.tls import make_dev_certificates
from policyengine.audit.store import make_engine
from policyengine.audit.verify import verify

REPO = Path(__file__).resolve().parents[2]
REVIEW = json.loads((REPO / "examples" / "admission" / "create-httproute-profile.json").read_text())
CHECKOUT = "spiffe://acme.example/ns/shop/sa/checkout"
CATALOG_HOST = "catalog.shop.svc.clusterset.local"


def httproute_review(n: int, **changes: Any) -> dict[str, Any]:
    """The example HTTPRoute review (decided and audited) with a fresh uid and name, then `changes`:
    dotted paths into the review set to values (a value of `DROP` removes the key)."""
    body = copy.deepcopy(REVIEW)
    body["request"]["uid"] = f"uid-{n}-{time.monotonic_ns()}"
    body["request"]["object"]["metadata"]["name"] = f"profile-{n}"
    body["request"]["name"] = f"profile-{n}"
    for path, value in changes.items():
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return body


DROP = object()


def encoded(body: Any) -> bytes:
    """JSON as a client may send it: lone surrogates as `\\udXXX` escapes, NUL as `\\u0000`."""
    return json.dumps(body, ensure_ascii=True).encode()


@dataclass
class Served:
    """A running server; every decision id it gave out is collected in `given`."""

    process: subprocess.Popen[bytes]
    url: str
    client: httpx.Client
    log: Path
    given: list[str] = field(default_factory=list)

    def validate(self, body: dict[str, Any], timeout: float = 10) -> httpx.Response:
        answer = self.client.post("/validate", content=encoded(body), headers=_JSON, timeout=timeout)
        if answer.status_code == 200:
            notes = answer.json()["response"].get("auditAnnotations") or {}
            if "decision_id" in notes:
                self.given.append(notes["decision_id"])
        return answer

    def decide(self, route: dict[str, Any], timeout: float = 10) -> httpx.Response:
        answer = self.client.post("/v1/decide", content=encoded(route), headers=_JSON, timeout=timeout)
        if answer.status_code == 200 and "decision_id" in answer.json():
            self.given.append(answer.json()["decision_id"])
        return answer

    def authz(self, timeout: float = 10) -> httpx.Response:
        answer = self.client.get(
            "/v1/authz", headers={"host": CATALOG_HOST, "x-policyengine-source": CHECKOUT}, timeout=timeout
        )
        given = answer.headers.get("x-policyengine-decision-id")
        if given:
            self.given.append(given)
        return answer

    def ready(self) -> httpx.Response:
        return self.client.get("/readyz", timeout=5)

    def live(self) -> httpx.Response:
        return self.client.get("/healthz", timeout=5)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.client.close()

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


_JSON = {"content-type": "application/json"}


def serve(tmp: Path, audit_url: str, spool: Path, *, name: str = "server", ready_within: float = 60) -> Served:
    """Start `policyengine serve` for eu-1 and wait until /readyz answers 200 (or fail with its log)."""
    certs = make_dev_certificates(tmp / "tls", reuse=True)
    policies = tmp / "policies"
    if not policies.exists():
        copy_policies(tmp)
    port = free_port()
    log = tmp / f"{name}.log"
    command = [
        sys.executable, "-m", "policyengine.cli.serve",
        "--cluster", "eu-1", "--policies", str(policies), "--db", audit_url, "--spool-dir", str(spool),
        "--port", str(port), "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--runtime-dir", str(tmp / f"run-{name}"), "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env)
    client = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl_context(certs.ca_cert), timeout=10)
    served = Served(process, f"https://127.0.0.1:{port}", client, log)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if client.get("/readyz").status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    served.stop()
    raise AssertionError(f"server not ready within {ready_within:g} s:\n{log.read_text()[-4000:]}")


def lost(url: str, given: Iterable[str], within: float = 60) -> list[str]:
    """The decision ids given out that the database does not hold, after waiting up to `within`
    seconds for spools to ship."""
    wanted = set(given)
    deadline = time.monotonic() + within
    while True:
        missing = sorted(wanted - set(stored_ids(url)))
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


def verified(url: str) -> int:
    """Rows in the database after verify agrees with every chain (asserted)."""
    engine = make_engine(url)
    try:
        report = verify(engine)
    finally:
        engine.dispose()
    assert report.ok, report.findings
    return report.rows
