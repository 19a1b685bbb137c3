"""The routing filter's request metrics on a real server: every /v1/authz and /v1/decide answer is
counted by decision and timed (policyengine_routing_requests_total, _request_duration_seconds)."""

from __future__ import annotations

import time
from pathlib import Path

from webhook.harness import start_server

from routing.parts import CATALOG, CHECKOUT

CATALOG_HOST = "catalog.shop.svc.clusterset.local"
ROUTE = '{"service": "shop/checkout", "source": {"cluster": "eu-1"}, "destination": {"cluster": "us-1"}}'
REQUESTS = "policyengine_routing_requests_total"
DURATION = "policyengine_routing_request_duration_seconds"


def test_authz_and_decide_answers_are_counted_and_timed(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        allowed, refused, decided = 120, 30, 5
        for _ in range(allowed):
            answer = server.client.get("/v1/authz", headers={"host": CATALOG_HOST, "x-policyengine-source": CHECKOUT})
            assert answer.status_code == 200
        for _ in range(refused):  # a host outside services.yaml: refused (fail closed)
            answer = server.client.get(
                "/v1/authz", headers={"host": "nowhere.example.com", "x-forwarded-client-cert": f"URI={CATALOG}"}
            )
            assert answer.status_code == 403
        outcomes = set()
        for _ in range(decided):
            answer = server.client.post("/v1/decide", content=ROUTE, headers={"content-type": "application/json"})
            outcomes.add(answer.json()["outcome"])
        (outcome,) = outcomes
        assert server.metric(REQUESTS, endpoint="authz", decision="allow") == allowed
        assert server.metric(REQUESTS, endpoint="authz", decision="deny") == refused
        assert server.metric(REQUESTS, endpoint="decide", decision=outcome) == decided
        assert server.metric(DURATION + "_count", endpoint="authz") == allowed + refused
        assert server.metric(DURATION + "_bucket", endpoint="authz", decision="allow", le="+Inf") == allowed
        assert 0 < server.metric(DURATION + "_sum", endpoint="authz") < 60
    finally:
        server.stop()


def test_serve_reports_the_routing_table_complete_in_a_metric_and_its_log(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--log-level", "info")  # the last --log-level wins
    try:
        revision = server.client.get("/readyz").json()["checks"]["policy"]["revision"]
        deadline = time.monotonic() + 30
        while server.client.get("/readyz").json()["checks"]["routing_table"]["complete"] is not True:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        assert server.metric("policyengine_routing_table_complete", revision=revision) == 1
        log = server.log.read_text()
        assert f"routing table for {revision} complete: 6 services" in log, log
    finally:
        server.stop()
