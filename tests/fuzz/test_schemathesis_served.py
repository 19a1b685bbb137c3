"""schemathesis over the served app's own OpenAPI: every operation, request bodies included (the
AdmissionReview of the webhooks, the route of /v1/decide, the headers of /v1/authz), with data that fits
the schema and data that does not, a fixed seed, a bounded number of examples per operation. No answer
may be a 5xx and the server log must hold no traceback; status codes are counted and printed.

Before the OpenAPI described these bodies, 36,122 schemathesis cases found no 5xx although hostile
bodies got 500s: it had nothing to generate them from. POLICYENGINE_FUZZ_SCALE multiplies the examples."""

from __future__ import annotations

from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from fuzz.conftest import Served
from fuzz.served import scale, tracebacks

EXAMPLES_WITH_BODY = 50  # /mutate, /validate, /v1/decide
EXAMPLES = 10  # every other operation (14 of them are /v1/authz, one per method and path)


BODIES = ("/mutate", "/validate", "/v1/decide")


@pytest.fixture(scope="module")
def schema(served: Served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.server.base_url}/openapi.json", verify=str(served.server.ca))


def test_the_openapi_describes_every_request_body(schema: schemathesis.BaseSchema) -> None:
    document = schema.raw_schema
    for path in ("/mutate", "/validate", "/v1/decide"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].startswith("#/components/schemas/")
    review = document["components"]["schemas"]["AdmissionReview"]
    assert set(review["required"]) >= {"apiVersion", "kind", "request"}
    headers = {p["name"] for p in document["paths"]["/v1/authz"]["get"]["parameters"]}
    assert {"x-policyengine-source", "x-forwarded-client-cert", "host", "sec-gpc"} <= headers


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(served: Served, schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    session = requests.Session()
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    unbreakable: list[str] = []
    assert len(operations) >= 18
    for operation in operations:

        @seed(20261114)
        @settings(
            max_examples=(EXAMPLES_WITH_BODY if operation.method.upper() == "POST" and operation.path in BODIES
                          else EXAMPLES) * scale(),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case: Case) -> None:
            response = case.call(base_url=served.server.base_url, session=session, verify=str(served.server.ca))
            statuses[response.status_code] += 1
            assert response.status_code < 500, case.as_curl_command(verify=False)

        try:
            one()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing in it can be wrong (no parameters, no body)
            unbreakable.append(operation.label)
    session.close()
    counted = dict(sorted(statuses.items()))
    print(f"schemathesis {mode.value}: {sum(statuses.values())} requests, status codes {counted}; {unbreakable=}")
    assert sum(statuses.values()) >= len(operations)
    assert tracebacks(served.server.log) == []
