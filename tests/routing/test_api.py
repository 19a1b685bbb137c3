"""/v1/decide and /v1/authz on the real server app (create_app: real policy, regorus, audit in a fresh
PostgreSQL database), called in-process through Starlette's TestClient (which runs the lifespan)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from policyengine.api.app import create_app
from policyengine.api.settings import Settings
from routing.parts import CATALOG, CHECKOUT, POLICIES

CATALOG_HOST = "catalog.shop.svc.clusterset.local"
FROM_CHECKOUT = {"host": CATALOG_HOST, "x-policyengine-source": CHECKOUT}
ROUTE = '"source": {"cluster": "eu-1"}, "destination": {"cluster": "us-1"}'


@pytest.fixture
def client(pg_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(cluster="eu-1", policies=POLICIES, audit_url=pg_url))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def routing_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM audit_decision WHERE source='routing'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_envoy_style_authz_answers_cluster_and_decision_id(client: TestClient) -> None:
    answer = client.post(
        "/v1/authz/cart/items",
        headers={"host": CATALOG_HOST, "x-forwarded-client-cert": f"Hash=ab;URI={CATALOG}"},
    )
    assert answer.status_code == 200
    assert answer.headers["x-policyengine-cluster"] == "eu-1"
    assert answer.json()["decision_id"] == answer.headers["x-policyengine-decision-id"]


@pytest.mark.parametrize(
    ("headers", "mentions"),
    [
        ({"host": CATALOG_HOST}, "x-policyengine-source"),
        ({"host": CATALOG_HOST, "x-policyengine-source": "root"}, "SPIFFE"),
        ({"host": CATALOG_HOST, "x-policyengine-source": "spiffe://acme.example/" + "a" * 5000}, "512"),
        ({"host": CATALOG_HOST, "x-policyengine-source": "a" * 600 + "/b"}, "512"),
        (
            {"host": CATALOG_HOST, "x-forwarded-client-cert": "Hash=1;" + "x" * 20000},
            "x-forwarded-client-cert",
        ),
        ({"host": "[::1]:80", "x-policyengine-source": CHECKOUT}, "Host"),
        ({"host": "nowhere.example.com", "x-policyengine-source": CHECKOUT}, "services.yaml"),
        ({"host": CATALOG_HOST, "x-policyengine-source": CHECKOUT, "sec-gpc": "maybe"}, "Sec-GPC"),
        (
            {"host": CATALOG_HOST, "x-policyengine-source": CHECKOUT, "x-original-uri": "/a"},
            "X-Original-Method",
        ),
    ],
)
def test_authz_refuses_what_it_cannot_judge_with_the_reason(
    client: TestClient, pg_url: str, headers: dict[str, str], mentions: str
) -> None:
    answer = client.get("/v1/authz", headers=headers)
    assert answer.status_code == 403
    body = answer.json()
    assert body["allowed"] is False
    assert mentions in body["reason"] + body.get("remedy", "")
    assert answer.headers["x-policyengine-denial"]
    assert routing_rows(pg_url) == 1  # a refusal is a decision too


def test_decide_answers_the_decision(client: TestClient, pg_url: str) -> None:
    route = {
        "service": "shop/checkout",
        "source": {"cluster": "eu-1", "workload": "shop/gateway"},
        "destination": {"cluster": "us-1"},
    }
    answer = client.post("/v1/decide", json=route)
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["regimes"] == ["GDPR"]
    assert decision["outcome"] in ("deny", "rewrite")
    assert "us-1" not in decision["permitted_clusters"]
    assert decision["violations"][0]["article"].startswith("GDPR")
    assert routing_rows(pg_url) == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[]", "(body)"),
        (b"{}", "service"),
        (
            b'{"service": "checkout", "source": {"cluster": "eu-1"}, "destination": {"cluster": "us-1"}}',
            "service",
        ),
        (b'{"service": "shop/a", "source": {}, "destination": {"cluster": "us-1"}}', "source.cluster"),
        (
            b'{"service": "shop/a", "source": {"cluster": "eu-1"}, "destination": {"cluster": "u"}, "x": 1}',
            "x",
        ),
    ],
)
def test_decide_rejects_bad_routes_saying_where(client: TestClient, body: bytes, where: str) -> None:
    answer = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert any(p["where"] == where for p in problems), problems
    assert answer.json()["remedy"]


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        (b"not json", "(body)", "not JSON at line 1 column 1"),
        (b'{"service": "shop/check\\u0000out"}', "service", "NUL"),
        (b'{"service": "shop/\\udc00"}', "service", "lone surrogate"),
        (b'{"via": ' + b"9" * 5000 + b"}", "via", "64-bit"),
        (b'{"source": ' + b"[" * 100 + b"]" * 100 + b"}", "source[0]", "nested deeper than 64"),
    ],
)
def test_decide_refuses_json_it_cannot_hold_saying_where(
    client: TestClient, body: bytes, where: str, what: str
) -> None:
    answer = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    problem = answer.json()["problems"][0]
    assert problem["where"].startswith(where) and what in problem["what"], problem


def test_decide_refuses_a_huge_body(client: TestClient) -> None:
    answer = client.post("/v1/decide", content=b"{" + b" " * 100_000 + b"}")
    assert answer.status_code == 413
    assert "bytes" in answer.json()["error"]


def test_the_source_header_is_configurable(pg_url: str) -> None:
    """`serve --authz-source-header x-caller`: the identity is read from that header, not the default."""
    app = create_app(Settings(cluster="eu-1", policies=POLICIES, audit_url=pg_url, authz_source_header="x-caller"))
    with TestClient(app, raise_server_exceptions=False) as configured:
        answer = configured.get(
            "/v1/authz", headers={"host": CATALOG_HOST, "x-caller": CHECKOUT, "x-original-method": "GET"}
        )
        assert answer.status_code == 200, answer.text
        ignored = configured.get("/v1/authz", headers={**FROM_CHECKOUT, "x-original-method": "GET"})
        assert ignored.status_code == 403 and "x-caller" in ignored.text


def test_a_bad_source_header_name_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="authz_source_header"):
        Settings(cluster="eu-1", authz_source_header="x caller: y")


def test_requests_sharing_one_key_each_get_their_own_decision_id_and_audit_row(
    client: TestClient, pg_url: str
) -> None:
    """catalog and an unlisted catalog-canary hold the same (unregulated) data: one key answers both,
    yet every request is its own decision with its own id, audit row and the digest of its own input."""
    canary = "spiffe://acme.example/ns/shop/sa/catalog-canary"
    callers = [CATALOG, CATALOG, canary]
    ids = []
    for caller in callers:
        answer = client.get("/v1/authz", headers={"host": CATALOG_HOST, "x-policyengine-source": caller})
        assert answer.status_code == 200
        ids.append(answer.headers["x-policyengine-decision-id"])
    assert len(set(ids)) == 3
    engine = create_engine(pg_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT decision_id, \"user\", service, input_digest FROM audit_decision WHERE source='routing'")
            ).all()
    finally:
        engine.dispose()
    by_id = {row[0]: row for row in rows}
    assert set(ids) <= set(by_id)
    first, second, third = (by_id[i] for i in ids)
    assert first[1] == second[1] == "shop/catalog" and third[1] == canary
    assert first[2] == second[2] == third[2] == "shop/catalog"
    assert first[3] == second[3] != third[3]  # the digest of each pair's own input


def test_readyz_says_whether_the_routing_table_is_complete_and_for_which_revision(client: TestClient) -> None:
    client.get("/v1/authz", headers=FROM_CHECKOUT)
    routing = client.app.state.routing_filter  # type: ignore[attr-defined]
    routing.wait_for_builds()
    detail = client.get("/readyz").json()["checks"]["routing_table"]
    assert detail["complete"] is True
    assert detail["revision"] == client.app.state.pe.snapshot.revision  # type: ignore[attr-defined]
    assert detail["keyed"] is True and detail["services"] == 6 and detail["answers"] > 0


def test_the_data_path_is_served_by_plain_routes_first_and_still_documented(client: TestClient) -> None:
    """/validate, /mutate, /v1/authz, /v1/authz/{path} and /v1/decide are matched first, by plain
    Starlette routes calling the same endpoints (FastAPI's route machinery cost 8-18 % of their CPU);
    the OpenAPI document still describes them, and a wrong method is still FastAPI's JSON 405."""
    from starlette.routing import Route

    from policyengine.api import admission, routing

    plain = [r for r in client.app.routes if type(r) is Route]  # type: ignore[attr-defined]
    assert client.app.routes[: len(plain)] == plain  # type: ignore[attr-defined]
    by_path = {r.path: r.endpoint for r in plain}
    assert by_path == {
        "/mutate": admission.mutate,
        "/validate": admission.validate,
        "/v1/authz": routing.authz_root,
        "/v1/authz/{path:path}": routing.authz_path,
        "/v1/decide": routing.decide,
    }
    document = client.get("/openapi.json").json()
    assert {"/validate", "/mutate", "/v1/authz", "/v1/authz/{path}", "/v1/decide"} <= set(document["paths"])
    path_parameters = [p for p in document["paths"]["/v1/authz/{path}"]["get"]["parameters"] if p["in"] == "path"]
    assert [p["name"] for p in path_parameters] == ["path"]
    wrong = client.get("/validate")
    assert wrong.status_code == 405 and wrong.json() == {"detail": "Method Not Allowed"}
    deep = client.get("/v1/authz/a/b%20c", headers=FROM_CHECKOUT)  # the path parameter reaches the filter
    assert deep.status_code == 200, deep.text
