"""Requests carrying what the audit encoding and the database used to choke on, sent to a served
instance between innocent ones (issue #13 items 1 and 2): a lone surrogate in `request.userInfo.username`
and in `request.name` (no `metadata.name`), NUL in `metadata.name` on /validate and in `service` on
/v1/decide, a huge integer in the object. Each is answered without a 5xx (decided and recorded, or
refused with a 4xx); the innocent requests around them are answered and recorded; afterwards the server
still writes to the database (no spool), is ready, and verify agrees with every chain. 0 acknowledged
rows lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.own_postgres import stored_ids

from reliability.served import DROP, httproute_review, lost, serve, verified

ROUTE = {
    "service": "shop/checkout",
    "source": {"cluster": "eu-1", "workload": "shop/gateway"},
    "destination": {"cluster": "us-1"},
}


def _bad_requests() -> list[tuple[str, Any]]:
    return [
        ("validate", httproute_review(1, **{"request.userInfo.username": "mallory \ud800"})),
        ("validate", httproute_review(2, **{"request.name": "lone \udfff", "request.object.metadata.name": DROP})),
        ("validate", httproute_review(3, **{"request.object.metadata.name": "pro\x00file"})),
        ("validate", httproute_review(4, **{"request.object.metadata.generation": 10**40})),
        ("validate", httproute_review(5, **{"request.object.metadata.labels": {"n": "\x00", "s": "\ud83d"}})),
        ("decide", {**ROUTE, "service": "shop/check\x00out"}),
        ("decide", {**ROUTE, "via": "POST \ud800 /v1/decide"}),
    ]


def test_poison_requests_neither_stop_the_trail_nor_cost_an_innocent_row(audit_url: str, tmp_path: Path) -> None:
    server = serve(tmp_path, audit_url, tmp_path / "spool")
    try:
        innocent = 0
        for n, (endpoint, body) in enumerate(_bad_requests()):
            answer = server.validate(body) if endpoint == "validate" else server.decide(body)
            assert answer.status_code < 500, (endpoint, body, answer.status_code, answer.text)
            for k in range(3):  # innocent requests right behind it
                ok = server.validate(httproute_review(100 + 10 * n + k))
                assert ok.status_code == 200 and "auditAnnotations" in ok.json()["response"], ok.text
                allowed = ok.json()["response"]
                assert allowed.get("status", {}).get("code") != 503, allowed  # not the failure answer
                innocent += 1
            assert server.decide(ROUTE).status_code == 200
            innocent += 1
        assert server.ready().status_code == 200, server.ready().text
        assert server.live().status_code == 200
        rows_now = len(stored_ids(audit_url))
        assert rows_now >= innocent  # written to the database itself, not waiting in a spool
    finally:
        server.stop()
    assert not list((tmp_path / "spool").glob("*.spool")) or all(
        p.stat().st_size == 0 for p in (tmp_path / "spool").glob("*.spool")
    )
    missing = lost(audit_url, server.given, within=5)
    assert not missing, f"{len(missing)} of {len(server.given)} acknowledged decisions are not recorded"
    assert verified(audit_url) == len(stored_ids(audit_url))
