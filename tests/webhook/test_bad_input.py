"""Bad input answers 400 with a message that says what is wrong, is counted, and the server stays up."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .harness import Server, review
from .objects import http_route

GOOD = review(http_route("shop", "profile"))


def body_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    raw = json.loads(json.dumps(GOOD))
    change(raw)
    return json.dumps(raw).encode()


def pop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1])

    return change


def put(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


JSON = "application/json"
CASES: list[tuple[str, bytes, str, str, str]] = [
    # (name, body, content type, reason label, words the message must contain)
    ("not json", b"{not json", JSON, "not_json", "not JSON at line 1"),
    ("json array", b"[1, 2]", JSON, "shape", "expected an AdmissionReview object"),
    ("wrong apiVersion", body_with(put("admission.k8s.io/v1beta1", "apiVersion")), JSON, "api_version", "v1"),
    ("wrong kind", body_with(put("AdmissionResponse", "kind")), JSON, "kind", "is not AdmissionReview"),
    ("no request", body_with(pop("request")), JSON, "missing_request", "no `request`"),
    ("no uid", body_with(pop("request", "uid")), JSON, "missing_uid", "request.uid"),
    ("empty uid", body_with(put("", "request", "uid")), JSON, "missing_uid", "request.uid"),
    ("bad operation", body_with(put("PATCH", "request", "operation")), JSON, "shape", "request.operation"),
    ("object a list", body_with(put([1], "request", "object")), JSON, "shape", "request.object"),
    ("no object kind", body_with(pop("request", "object", "kind")), JSON, "shape", "request.object.kind"),
    (
        "rules not a list",
        body_with(put({"backendRefs": []}, "request", "object", "spec", "rules")),
        JSON,
        "shape",
        "spec.rules",
    ),
    (
        "labels not strings",
        body_with(put({"a": 1}, "request", "object", "metadata", "labels")),
        JSON,
        "shape",
        "metadata.labels",
    ),
    ("text/plain", json.dumps(GOOD).encode(), "text/plain", "content_type", "application/json"),
    (
        "form",
        json.dumps(GOOD).encode(),
        "application/x-www-form-urlencoded",
        "content_type",
        "application/json",
    ),
]


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
@pytest.mark.parametrize(
    ("name", "body", "content_type", "reason", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_400_with_its_message(
    server: Server, path: str, name: str, body: bytes, content_type: str, reason: str, words: str
) -> None:
    endpoint = path.strip("/")
    before = server.metric("policyengine_admission_bad_requests_total", endpoint=endpoint, reason=reason)
    answer = server.client.post(path, content=body, headers={"content-type": content_type})
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"], answer.json()
    after = server.metric("policyengine_admission_bad_requests_total", endpoint=endpoint, reason=reason)
    assert after == before + 1
    assert server.alive()


def test_a_body_over_the_limit_is_refused_without_reading_it_all(server: Server) -> None:
    big = body_with(put({"blob": "x" * (3 * 1024 * 1024)}, "request", "object", "data"))
    answer = server.client.post("/validate", content=big, headers={"content-type": JSON})
    assert answer.status_code == 413
    assert "over the limit of 3145728 bytes" in answer.json()["error"]
    assert answer.headers["connection"] == "close"

    def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        for _ in range(40):
            yield b"x" * (100 * 1024)

    streamed = server.client.post("/validate", content=chunks(), headers={"content-type": JSON})
    assert streamed.status_code == 413 and "over the limit" in streamed.json()["error"]
    assert server.alive()
    ok = server.client.post("/validate", json=GOOD)  # and it still answers good reviews
    assert ok.status_code == 200 and ok.json()["response"]["uid"] == GOOD["request"]["uid"]
