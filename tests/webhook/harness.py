"""A real policyengine HTTPS server in a subprocess, and AdmissionReviews to send it.

The server is `python -m policyengine.cli.serve` (the `serve` command) on a free loopback port, with
certificates made by the test, a migrated SQLite audit store and a copy of the default policy repo, all
under the test's tmp_path. Clients verify the server certificate against the test CA.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import sqlalchemy as sa

from policyengine.api.tls import make_dev_certificates
from policyengine.audit.migrate import upgrade
from policyengine.resources import default_policies

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICIES = default_policies()
ADMIN_TOKEN = "test-admin-token-" + "x" * 24
# GDPR data of shop/checkout from eu-1 to us-1: refused under the default policy (its SCC has expired).
DECIDE_ROUTE = '{"service": "shop/checkout", "source": {"cluster": "eu-1"}, "destination": {"cluster": "us-1"}}'

GROUPS_OF_KIND = {
    "Service": ("", "v1", "services"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "ConfigMap": ("", "v1", "configmaps"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def review(
    obj: Mapping[str, Any] | None,
    *,
    operation: str = "CREATE",
    dry_run: bool = False,
    username: str = "alice@example.com",
    old: Mapping[str, Any] | None = None,
    uid: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 request as the API server sends it for `obj` (or `old` on DELETE)."""
    subject = obj if obj is not None else old
    assert subject is not None
    api_version = str(subject["apiVersion"])
    group, _, version = api_version.rpartition("/")
    kind = str(subject["kind"])
    metadata = subject.get("metadata", {})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": metadata.get("name", ""),
            "namespace": namespace if namespace is not None else metadata.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": username, "uid": "u-1", "groups": ["system:authenticated"]},
            "object": copy.deepcopy(dict(obj)) if obj is not None else None,
            "oldObject": copy.deepcopy(dict(old)) if old is not None else None,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def patch_of(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The decoded RFC 6902 patch of an AdmissionReview response ([] when there is none)."""
    body = response["response"]
    if "patch" not in body:
        return []
    assert body["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(body["patch"]))
    return ops


def apply(obj: Mapping[str, Any], patch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(obj)), list(patch))
    return result


@dataclass
class Server:
    """A running `policyengine serve` and an HTTPS client that trusts its CA."""

    base_url: str
    process: subprocess.Popen[bytes]
    ca: Path
    cert_dir: Path
    policies: Path
    audit_url: str
    log: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, verify=ssl_context(self.ca), timeout=10)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def post_review(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.client.post(path, json=body)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        assert data["apiVersion"] == "admission.k8s.io/v1" and data["kind"] == "AdmissionReview"
        assert data["response"]["uid"] == body["request"]["uid"]
        return data

    def mutate(self, obj: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.post_review("/mutate", review(obj, **kw))

    def validate(self, obj: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.post_review("/validate", review(obj, **kw))

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples matching `labels` on one scrape of /metrics."""
        text = self.client.get("/metrics").text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def decide(self, route: str = DECIDE_ROUTE) -> dict[str, Any]:
        """The Decision `POST /v1/decide` answers for `route` (JSON): its outcome and policy revision."""
        answer = self.client.post("/v1/decide", content=route, headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        decision: dict[str, Any] = answer.json()
        return decision

    def alive(self) -> bool:
        return self.process.poll() is None and self.client.get("/healthz").status_code == 200

    def audit_rows(self) -> list[dict[str, Any]]:
        engine = sa.create_engine(self.audit_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT * FROM audit_decision ORDER BY id")).mappings().all()
            return [dict(r) for r in rows]
        finally:
            engine.dispose()

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll `check` until it is true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def ssl_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, target)
    return target


def start_server(
    tmp_path: Path,
    *extra: str,
    cluster: str = "eu-1",
    policies: Path | None = None,
    audit_url: str | None = None,
    policy_flag: bool = True,
) -> Server:
    """Start `policyengine serve` and wait until /readyz answers 200 (or fail with its log). The audit
    store is a SQLite file in `tmp_path` unless `audit_url` names another (it is migrated here).

    `policy_flag=False` passes no `--policies` (the policy comes from `extra`, e.g. a bundle URL).
    """
    certs = make_dev_certificates(tmp_path / "tls", reuse=False)
    audit_url = audit_url or f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(audit_url)
    policies = policies or copy_policies(tmp_path)
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    port = free_port()
    log = tmp_path / "server.log"
    command = [
        sys.executable, "-m", "policyengine.cli.serve",
        "--cluster", cluster, *(["--policies", str(policies)] if policy_flag else []), "--db", audit_url,
        "--spool-dir", str(tmp_path / "spool"), "--port", str(port),
        "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--admin-token-file", str(token_file), "--runtime-dir", str(tmp_path / "run"),
        "--log-level", "warning", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    url = f"https://127.0.0.1:{port}"
    server = Server(url, process, certs.ca_cert, tmp_path / "tls", policies, audit_url, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if server.client.get("/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server not ready within 60 s:\n{log.read_text()}")
