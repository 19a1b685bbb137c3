"""Operating the server: TLS certificates reloaded on rotation, policy reload (file change and admin API,
atomic, a broken repo keeps the old policy), several workers with summed metrics, deadlines answering
per failure mode, readiness."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import raw_http
from cryptography import x509

from policyengine.api.tls import load_dev_ca, make_dev_certificates

from .conftest import webhook_policies
from .harness import ADMIN_TOKEN, Server, review, ssl_context, start_server, wait_for
from .objects import http_route


def served_serial(server: Server) -> int:
    """The serial number of the certificate a new TLS handshake gets (verified against the test CA)."""
    host, port = server.base_url.removeprefix("https://").split(":")
    context = ssl_context(server.ca)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def revision(server: Server) -> str:
    return str(server.client.get("/readyz").json()["checks"]["policy"]["revision"])


def test_rotated_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--cert-check-seconds", "0.2")
    try:
        before = served_serial(server)
        kept = httpx.Client(base_url=server.base_url, verify=ssl_context(server.ca))
        assert kept.get("/healthz").status_code == 200
        make_dev_certificates(server.cert_dir, ca=load_dev_ca(server.cert_dir))  # cert-manager's rotation
        assert wait_for(lambda: served_serial(server) != before), "the new certificate was never served"
        assert kept.get("/healthz").status_code == 200  # an open connection keeps working
        # A half-written pair (key of another certificate) is not loaded; the working chain stays.
        current = served_serial(server)
        (server.cert_dir / "tls.key").write_bytes((tmp_path / "tls" / "ca.key").read_bytes())
        time.sleep(1)
        assert served_serial(server) == current and server.alive()
        kept.close()
    finally:
        server.stop()


def test_policy_reload_by_file_change_and_admin_api_is_atomic(tmp_path: Path) -> None:
    policies = webhook_policies(tmp_path)
    server = start_server(tmp_path, "--policy-check-seconds", "0.3", policies=policies)
    try:
        first = revision(server)
        assert server.client.post("/v1/admin/reload").status_code == 401
        wrong = server.client.post("/v1/admin/reload", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        same = server.client.post("/v1/admin/reload", headers=auth)
        assert same.status_code == 200 and same.json()["changed"] is False

        # sandbox becomes deny: the same review is refused once the new policy is served.
        denied_in_sandbox = http_route("sandbox", "ledger")
        assert server.validate(denied_in_sandbox)["response"]["allowed"] is True
        enforcement = policies / "enforcement.yaml"
        enforcement.write_text(
            enforcement.read_text().replace("[sandbox], action: dryrun", "[sandbox], action: deny")
        )
        assert wait_for(lambda: revision(server) != first), "the file change was not picked up"
        assert server.validate(denied_in_sandbox)["response"]["allowed"] is False

        # A broken repo: 422 with file:line problems, the previous revision keeps serving.
        second = revision(server)
        (policies / "clusters.yaml").write_text("clusters: [ {name: eu-1, region: nowhere/none} ]\n")
        broken = server.client.post("/v1/admin/reload", headers=auth)
        assert broken.status_code == 422 and broken.json()["problems"], broken.text
        assert broken.json()["revision"] == second
        ready = server.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["policy"]["last_reload_error"]
        assert server.validate(denied_in_sandbox)["response"]["allowed"] is False
    finally:
        server.stop()


def test_two_workers_sum_metrics_and_all_reload(tmp_path: Path) -> None:
    policies = webhook_policies(tmp_path)
    server = start_server(tmp_path, "--workers", "2", "--policy-check-seconds", "0.3", policies=policies)
    try:
        pids: set[str | None] = set()
        sent = 0
        while sent < 30 or (len(pids) < 2 and sent < 300):  # new connections until both workers answered
            with httpx.Client(base_url=server.base_url, verify=ssl_context(server.ca)) as fresh:
                body = review(http_route("shop", "profile"))
                assert fresh.post("/validate", json=body).json()["response"]["allowed"] is False
                pids.add(fresh.get("/readyz").headers.get("x-policyengine-worker"))
            sent += 1
        assert len(pids) == 2, pids
        labels = {"endpoint": "validate", "kind": "HTTPRoute", "decision": "deny"}
        for _ in range(6):  # whichever worker answers the scrape reports both workers' counts
            with httpx.Client(base_url=server.base_url, verify=ssl_context(server.ca)) as fresh:
                text = fresh.get("/metrics").text
            total = sum(
                float(line.rpartition(" ")[2])
                for line in text.splitlines()
                if line.startswith("policyengine_admission_requests_total{")
                and all(f'{k}="{v}"' in line for k, v in labels.items())
            )
            assert total == sent
        first = revision(server)
        enforcement = policies / "enforcement.yaml"
        enforcement.write_text(
            enforcement.read_text() + "  - {regime: PIPL, namespaces: [shop], action: warn}\n"
        )
        answer = server.client.post("/v1/admin/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert answer.status_code == 200 and answer.json()["changed"] is True

        def every_worker_reloaded() -> bool:
            seen = set()
            for _ in range(10):
                with httpx.Client(base_url=server.base_url, verify=ssl_context(server.ca)) as fresh:
                    seen.add(revision_of(fresh))
            return seen == {answer.json()["revision"]}

        assert first != answer.json()["revision"]
        assert wait_for(every_worker_reloaded)
    finally:
        server.stop()


def revision_of(client: httpx.Client) -> str:
    return str(client.get("/readyz").json()["checks"]["policy"]["revision"])


def test_deadline_answers_per_failure_mode(tmp_path: Path) -> None:
    """The deadline runs from the request's head; each review is written in one TLS record, so its body
    is in before the endpoint starts and the deadline passes during the decision."""
    server = start_server(tmp_path, "--validate-deadline", "0.000001", "--mutate-deadline", "0.000001")

    def post(path: str) -> dict[str, Any]:
        body = json.dumps(review(http_route("shop", "profile"))).encode()
        data = raw_http.request_bytes("POST", path, body, {"content-type": "application/json"})
        answer = raw_http.exchange(server.port, ssl_context(server.ca), data)
        assert answer is not None and answer.status == 200, answer
        response: dict[str, Any] = json.loads(answer.body)["response"]
        return response

    try:
        refused = post("/validate")
        assert refused["allowed"] is False and refused["status"]["code"] == 503
        assert "deadline" in refused["status"]["message"] and "failure mode" in refused["status"]["message"]
        allowed = post("/mutate")
        assert allowed["allowed"] is True and "patch" not in allowed
        assert any("deadline" in w for w in allowed["warnings"])
        assert server.metric("policyengine_admission_requests_total", decision="failure") == 2
    finally:
        server.stop()


def test_not_ready_until_the_policy_loads(tmp_path: Path) -> None:
    """A served repo that breaks before startup: the CLI refuses to start, saying which file is wrong."""
    policies = webhook_policies(tmp_path)
    (policies / "regimes.yaml").write_text("regimes: {GDPR: {unknown_key: 1}}\n")
    try:
        start_server(tmp_path, policies=policies)
    except AssertionError as exc:
        assert "regimes.yaml" in str(exc) and "Traceback" not in str(exc)
    else:
        raise AssertionError("the server started on a broken policy repo")
