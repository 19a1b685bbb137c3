"""End to end through a real nginx (Debian nginx-light, auth_request) in front of two cluster upstreams
(`eu-1`, `us-1`: HTTP servers on loopback answering with their name), with `policyengine serve` (HTTPS,
cluster eu-1, the default policy repo, audit in a fresh PostgreSQL database) answering /v1/authz.

The nginx config is deploy/proxies/nginx.conf with its placeholders filled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from routing.parts import CATALOG, CHECKOUT
from routing.proxy_parts import (
    ClusterUpstream,
    Nginx,
    PolicyEngineServer,
    connections_to,
    start_nginx,
    start_policyengine,
    upstreams,
)

CATALOG_HOST = "catalog.shop.svc.clusterset.local"
PROFILE_HOST = "profile.shop.svc.clusterset.local"


@dataclass
class Gateway:
    nginx: Nginx
    policyengine: PolicyEngineServer
    clusters: dict[str, ClusterUpstream]
    db_url: str
    authz_requests: int = 0  # requests that reached nginx's location / (each makes one subrequest)

    def get(self, host: str, source: str | None, **headers: str) -> httpx.Response:
        sent = {"host": host, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if source is not None:
            sent["x-policyengine-source"] = source
        self.authz_requests += 1
        return httpx.get(f"{self.nginx.url}/orders/7?x=1", headers=sent, timeout=10)

    def routing_rows(self) -> list[dict[str, object]]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT decision_id, service, cluster, destination_cluster, decision"
                        " FROM audit_decision WHERE source = 'routing' ORDER BY seq"
                    )
                )
                return [dict(r._mapping) for r in rows]
        finally:
            engine.dispose()


@pytest.fixture
def gateway(tmp_path: Path, pg_url: str) -> Iterator[Gateway]:
    with upstreams("eu-1", "us-1") as clusters:
        server = start_policyengine(tmp_path, pg_url, cluster="eu-1")
        try:
            nginx = start_nginx(
                tmp_path / "nginx",
                {
                    "AUTHZ": f"127.0.0.1:{server.port}",
                    "AUTHZ_NAME": "localhost",
                    "AUTHZ_CA": str(server.ca),
                    "EU_1": clusters["eu-1"].address,
                    "US_1": clusters["us-1"].address,
                },
            )
            try:
                yield Gateway(nginx, server, clusters, pg_url)
            finally:
                nginx.stop()
        finally:
            server.stop()


def test_requests_go_only_where_the_policy_permits(gateway: Gateway) -> None:
    eu, us = gateway.clusters["eu-1"], gateway.clusters["us-1"]

    # A GDPR workload (checkout) calling catalog reaches eu-1 only, even when it asks for us-1.
    for prefer in (None, "us-1"):
        extra = {"x_policyengine_prefer_cluster": prefer} if prefer else {}
        answer = gateway.get(CATALOG_HOST, CHECKOUT, **extra)
        assert answer.status_code == 200, answer.text
        assert answer.text == "eu-1"
        assert answer.headers["x-policyengine-cluster"] == "eu-1"
        assert answer.headers["x-policyengine-decision-id"]
    assert not us.seen
    method, path, headers = eu.seen[-1]
    assert (method, path) == ("GET", "/orders/7?x=1")
    assert headers["x-policyengine-cluster"] == "eu-1"

    # An unregulated caller may reach both clusters: the nearest by default, us-1 when it asks.
    assert gateway.get(CATALOG_HOST, CATALOG).text == "eu-1"
    assert gateway.get(CATALOG_HOST, CATALOG, x_policyengine_prefer_cluster="us-1").text == "us-1"
    assert len(us.seen) == 1

    # A permitted cluster this nginx has no upstream block for is refused by nginx.
    answer = gateway.get(CATALOG_HOST, CHECKOUT, x_policyengine_prefer_cluster="eu-2")
    assert answer.status_code == 403
    assert "eu-2" in answer.json()["reason"]

    # A refused route: PIPL data (profile) may not come back to eu-1. 403 with the reason.
    seen = len(eu.seen) + len(us.seen)
    answer = gateway.get(PROFILE_HOST, CATALOG)
    assert answer.status_code == 403
    body = answer.json()
    assert body["allowed"] is False
    assert "PIPL" in body["reason"]
    pipl = [v for v in body["violations"] if v["regime"] == "PIPL"]
    assert pipl and pipl[0]["article"].startswith("PIPL") and pipl[0]["remedy"]
    assert answer.headers["x-policyengine-decision-id"] == body["decision_id"]

    # Requests the filter cannot judge are refused with the reason.
    answer = gateway.get(CATALOG_HOST, None)
    assert answer.status_code == 403
    assert "x-policyengine-source" in answer.json()["reason"]
    answer = gateway.get(CATALOG_HOST, "not an identity")
    assert answer.status_code == 403
    assert "SPIFFE" in answer.json()["reason"]
    answer = gateway.get("www.example.com", CATALOG)
    assert answer.status_code == 403
    assert "services.yaml" in json.dumps(answer.json())
    assert len(eu.seen) + len(us.seen) == seen

    # Every decision is an audit row (source routing), one per request.
    rows = gateway.routing_rows()
    assert len(rows) == gateway.authz_requests
    assert {r["cluster"] for r in rows} == {"eu-1"}
    assert [r["destination_cluster"] for r in rows[:4]] == ["eu-1", "eu-1", "eu-1", "us-1"]


def test_nginx_keeps_one_connection_to_policyengine(gateway: Gateway) -> None:
    """nginx discards an auth subrequest's response body unread, and a connection with an unread body
    cannot go back to the keep-alive pool: nginx then closes it (the server, with data unread, answers
    with a reset, so no TIME_WAIT is left) and opens a new TLS connection for the next check (measured:
    +0.4 ms per request). The config asks with HEAD, so answers carry no body and one connection serves
    every check, allowed or refused. The connection nginx holds is looked up after each request."""
    used: set[int] = set()
    for n in range(30):
        source = CATALOG if n % 3 else CHECKOUT
        assert gateway.get(CATALOG_HOST if n % 5 else PROFILE_HOST, source).status_code in (200, 403)
        open_now = {port for port, state in connections_to(gateway.policyengine.port).items() if state == "01"}
        assert open_now, f"after check {n + 1} nginx holds no open connection to policyengine"
        used |= open_now
    assert len(used) <= 2, f"nginx used {len(used)} connections for 30 checks"


def test_audit_rows_equal_requests_under_load(gateway: Gateway) -> None:
    requests = 200

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            sources = [CHECKOUT, CATALOG, "spiffe://acme.example/ns/shop/sa/catalog-canary"]
            return await asyncio.gather(
                *(
                    client.get(
                        f"{gateway.nginx.url}/load/{n}",
                        headers={"host": CATALOG_HOST, "x-policyengine-source": sources[n % 3]},
                    )
                    for n in range(requests)
                )
            )

    answers = asyncio.run(fire())
    assert [a.status_code for a in answers] == [200] * requests
    ids = {a.headers["x-policyengine-decision-id"] for a in answers}
    assert len(ids) == requests  # a fresh decision id per request
    rows = gateway.routing_rows()
    assert len(rows) == requests
    assert {str(r["decision_id"]) for r in rows} == ids


def test_nginx_refuses_when_policyengine_is_down(gateway: Gateway) -> None:
    assert gateway.get(CATALOG_HOST, CATALOG).status_code == 200
    gateway.policyengine.stop()
    seen = sum(len(c.seen) for c in gateway.clusters.values())
    answer = gateway.get(CATALOG_HOST, CATALOG)
    assert answer.status_code == 503
    assert "fail closed" in answer.json()["reason"]
    assert sum(len(c.seen) for c in gateway.clusters.values()) == seen
