"""JSON that no endpoint can hold is a 400 naming what and where (a JSON path), never a 500 or a
traceback, and never stops the server answering the next good request.

On the code before the bounded parser each of these was a 500: about 1,000 nested arrays raised
RecursionError in `json.loads`; nesting of 256-999 inside the object, integers of 2^64 or more and lone
surrogates raised TypeError in orjson (the input digest); a literal of more than 4,300 digits raised
ValueError; and /mutate of a Service nested 990 deep raised RecursionError in jsonpatch's deepcopy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webhook.harness import Server, review
from webhook.objects import exported_service, http_route

from edges.conftest import tracebacks

JSON = {"content-type": "application/json"}


def nested(depth: int, key: str | None = "x") -> str:
    """JSON text of `depth` arrays (or objects under `key`) around 1 (json.dumps recurses: not that deep)."""
    if key is None:
        return "[" * depth + "1" + "]" * depth
    return f'{{"{key}": ' * depth + "1" + "}" * depth


def body_of(obj: dict[str, Any], deep: str | None = None, **request: Any) -> bytes:
    """The review of `obj`; `deep` (JSON text) replaces the string "@DEEP@" anywhere in it."""
    raw = review(obj)
    raw["request"].update(request)
    text = json.dumps(raw)
    return (text.replace('"@DEEP@"', deep) if deep is not None else text).encode()


def text_with(obj_json: str, **request: str) -> bytes:
    """A review whose object is given as raw JSON text (for literals json.dumps would not write)."""
    raw = review(http_route("shop", "profile"))
    raw["request"]["object"] = "@OBJECT@"
    raw["request"].update(request)
    return json.dumps(raw).replace('"@OBJECT@"', obj_json).encode()


ROUTE = http_route("shop", "profile")
SERVICE = exported_service("shop")
UNPLACED = {**ROUTE, "metadata": {"name": "store"}}  # the API server may leave metadata.namespace out
CASES = [
    # (name, endpoint, body, JSON path the message names, words of the message)
    ("1000 nested arrays", "/validate", nested(1000, key=None).encode(), "[0][0][0]", "nested deeper than 64"),
    (
        "300 nested objects in the object",
        "/validate",
        body_of({**ROUTE, "spec": {**ROUTE["spec"], "extra": "@DEEP@"}}, nested(300)),
        "request.object.spec.extra.x",
        "nested deeper than 64",
    ),
    (
        "990 nested objects in a Service on /mutate",
        "/mutate",
        body_of({**SERVICE, "spec": {**SERVICE["spec"], "deep": "@DEEP@"}}, nested(990)),
        "request.object.spec.deep.x",
        "nested deeper than 64",
    ),
    (
        "2**64 in the object",
        "/validate",
        text_with(json.dumps(ROUTE).replace('"port": 8080', f'"port": {2**64}')),
        "request.object.spec.rules[0].backendRefs[0].port",
        "64-bit",
    ),
    (
        "5000-digit integer",
        "/mutate",
        text_with(json.dumps(ROUTE).replace('"port": 8080', '"port": ' + "7" * 5000)),
        "request.object.spec.rules[0].backendRefs[0].port",
        "(5000 digits)",
    ),
    (
        "lone surrogate in the object",
        "/validate",
        text_with(json.dumps(ROUTE).replace('"name": "profile"', '"name": "pro\\ud800file"')),
        "request.object.spec.rules[0].backendRefs[0].name",
        "lone surrogate (\\ud800)",
    ),
    (
        "lone surrogate in request.namespace",
        "/validate",
        text_with(json.dumps(UNPLACED), namespace="@NS@").replace(b'"@NS@"', b'"sh\\udfffop"'),
        "request.namespace",
        "lone surrogate (\\udfff)",
    ),
    (
        "NUL in metadata.name",
        "/validate",
        text_with(json.dumps(ROUTE).replace('"name": "store"', '"name": "st\\u0000ore"')),
        "request.object.metadata.name",
        "NUL",
    ),
    (
        "NUL in userInfo.username",
        "/mutate",
        body_of(ROUTE, userInfo={"username": "eve\u0000"}),
        "request.userInfo.username",
        "NUL",
    ),
    (
        "a 300-character metadata.name",
        "/validate",
        body_of({**ROUTE, "metadata": {"name": "n" * 300, "namespace": "shop"}}, name=""),
        "request.object.metadata.name",
        "at most 253",
    ),
    ("a 600-character username", "/mutate", body_of(ROUTE, userInfo={"username": "u" * 600}), "request", "512"),
    ("NaN", "/validate", text_with(json.dumps(ROUTE).replace('"port": 8080', '"port": NaN')), "port", "NaN"),
    ("1e999", "/validate", text_with(json.dumps(ROUTE).replace('"port": 8080', '"port": 1e999')), "port", "float"),
    ("not UTF-8", "/validate", b'{"apiVersion": "\xff"}', "(body)", "not UTF-8"),
]


@pytest.mark.parametrize(("name", "endpoint", "body", "where", "words"), CASES, ids=[c[0] for c in CASES])
def test_json_no_endpoint_can_hold_is_a_400_saying_where(
    server: Server, name: str, endpoint: str, body: bytes, where: str, words: str
) -> None:
    answer = server.client.post(endpoint, content=body, headers=JSON)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert message.startswith(where) or where in message.split(":")[0], message
    assert words in message, message
    good = server.validate(ROUTE)  # the next review is answered as usual
    assert good["response"]["allowed"] is False
    assert tracebacks(server) == []


def test_the_log_names_the_path_not_the_value(server: Server) -> None:
    """A refused body is logged with its reason and JSON path; the value itself stays out of the log."""
    secret = "hunter2-" + "s" * 12
    body = text_with(json.dumps(ROUTE).replace('"name": "store"', f'"name": "{secret}\\u0000"'))
    answer = server.client.post("/validate", content=body, headers=JSON)
    assert answer.status_code == 400
    assert secret in answer.json()["error"] or "metadata.name" in answer.json()["error"]
    assert secret not in server.log.read_text(errors="replace")
