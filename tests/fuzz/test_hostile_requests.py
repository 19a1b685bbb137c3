"""Property tests against a served instance: hypothesis draws hostile AdmissionReviews, routes and
authz header sets (tests/fuzz/strategies.py) with a fixed seed; every answer must be below 500, the
server log must hold no traceback, and a good request afterwards is still decided and audited.

The status codes are counted and printed (`pytest -s`); POLICYENGINE_FUZZ_SCALE multiplies the
number of examples (bench/fuzz.py runs it longer)."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import HealthCheck, given, seed, settings
from webhook.harness import ssl_context

from fuzz.conftest import Served
from fuzz.hostile import GOOD_ROUTE, JSON, Request, good_review
from fuzz.served import decision_ids, recorded, scale, tracebacks
from fuzz.strategies import admission_reviews, authz_requests, routes
from fuzz.wire_client import Session, Tally

EXAMPLES = 400
FUZZ = settings(
    max_examples=EXAMPLES * scale(),
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def fuzz(served: Served, strategy: object, name: str) -> Counter[int]:
    session = Session(served.server.port, ssl_context(served.server.ca))
    statuses: Counter[int] = Counter()

    @seed(20261114)
    @FUZZ
    @given(request=strategy)  # type: ignore[arg-type]
    def one(request: Request) -> None:
        outcome = session.send(request)
        statuses[outcome.status] += 1
        assert outcome.status < 500, (request.method, request.path, request.headers, request.body[:500], outcome.body)

    try:
        one()
    finally:
        session.close()
    print(f"{name}: {sum(statuses.values())} requests, status codes {dict(sorted(statuses.items()))}")
    return statuses


def still_served(served: Served) -> None:
    session = Session(served.server.port, ssl_context(served.server.ca))
    tally = Tally()
    for request in (
        Request("POST", "/validate", {"content-type": JSON}, json.dumps(good_review()).encode(), good="review"),
        Request("POST", "/v1/decide", {"content-type": JSON}, json.dumps(GOOD_ROUTE).encode(), good="decide"),
    ):
        tally.add(session.send(request))
    session.close()
    ids = decision_ids(tally)
    assert recorded(served.audit_url, ids) == set(ids)
    assert tracebacks(served.server.log) == []


def test_hostile_admission_reviews(served: Served) -> None:
    statuses = fuzz(served, admission_reviews, "AdmissionReviews")
    assert statuses[400] > 0  # the strategy does reach the refusals
    still_served(served)


def test_hostile_routes(served: Served) -> None:
    statuses = fuzz(served, routes, "routes")
    assert statuses[400] + statuses[422] > 0
    still_served(served)


def test_hostile_authz_requests(served: Served) -> None:
    statuses = fuzz(served, authz_requests(), "authz")
    assert statuses[403] > 0
    still_served(served)
