"""Hostile requests for the fuzzers: the values and mutations an attacker (or a broken client) sends,
and a seeded generator of mixed bad requests interleaved with good ones.

One `Request` is what goes on the wire (method, path, headers, body bytes; `raw` for bytes that are not
even HTTP). Bodies are JSON text assembled here, so they can hold what `json.dumps` will not write:
integer literals of thousands of digits, `NaN`, nesting a thousand deep, lone surrogates, bad UTF-8.
`HOSTILE_JSON` and `HOSTILE_HEADER_VALUES` are shared with the hypothesis strategies (strategies.py);
`BadRequests(seed)` draws from the same pieces with `random.Random`, fast enough for 50,000 requests.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
CATALOG = "spiffe://acme.example/ns/shop/sa/catalog"
CATALOG_HOST = "catalog.shop.svc.clusterset.local"
PLACEHOLDER = "@@HOSTILE@@"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes | None = None  # sent as is instead of an HTTP request built from the fields
    good: str = ""  # "" for a bad request; else what kind of good request (its decision is audited)
    fresh: bool = False  # framing that may leave the connection out of step: its own connection

    def wire(self) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        headers = {"host": "localhost", **self.headers}
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            headers.setdefault("content-length", str(len(self.body)))
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + self.body


def good_review(kind: str = "HTTPRoute") -> dict[str, Any]:
    """An AdmissionReview the webhooks decide (and audit): an HTTPRoute to shop/profile's ServiceImport."""
    obj = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "store", "namespace": "shop", "labels": {"app": "store"}, "annotations": {}},
        "spec": {
            "parentRefs": [{"name": "external-http"}],
            "rules": [
                {
                    "backendRefs": [
                        {"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": "profile", "port": 8080}
                    ]
                }
            ],
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": kind},
            "resource": {"group": "gateway.networking.k8s.io", "version": "v1", "resource": "httproutes"},
            "name": "store",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice@example.com", "uid": "u-1", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


GOOD_ROUTE = {"service": "shop/checkout", "source": {"cluster": "eu-1", "workload": "shop/gateway"},
              "destination": {"cluster": "us-1"}}  # fmt: skip
GOOD_AUTHZ = {"host": CATALOG_HOST, "x-policyengine-source": CATALOG, "x-original-method": "GET",
              "x-original-uri": "/orders/7"}  # fmt: skip

# JSON texts of hostile values, to put where a field's value goes.
HOSTILE_JSON: list[str] = [
    '"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"', '"nul\\u0000here"', '"\\u0000"', '""', '" "',
    '"' + "x" * 70_000 + '"', '"\\u202eevil"', '"../../etc/passwd"', "\"'; DROP TABLE audit_decision;--\"",
    '"%s%s%n{0}{}"', '"spiffe://"', '"a/b/c/d"', '"\\n\\r\\t"', '"😀"', '"\\ufffe"', '"\\\\"',
    "0", "-1", "1.5", "-0", "1e308", "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
    str(2**63), str(2**64), str(-(2**63) - 1), "9" * 4301, "-" + "7" * 5000, "1" + "0" * 400,
    "true", "false", "null", "[]", "{}", "[null]", '{"": null}', '{"\\u0000": 1}', '{"\\ud800": 1}',
    "[" * 65 + "]" * 65, "[" * 1000 + "]" * 1000, '{"a":' * 300 + "1" + "}" * 300, "[" * 5000,
    "[" + ",".join(["1"] * 10_000) + "]", '{"k": "v", "k": "w"}', "tru", "nul", '"unterminated', "{,}", "[1,]",
]  # fmt: skip

# Header values (latin-1 text, as HTTP carries them) for the headers /v1/authz reads.
HOSTILE_HEADER_VALUES: list[str] = [
    "", " ", "x" * 5000, "spiffe://", "spiffe://acme.example", "spiffe://ACME/ns/a/sa/b", "spiffe://a/../b",
    "spiffe://acme.example/ns/shop/sa/" + "a" * 3000, "shop/", "/catalog", "root", "a" * 300 + "/b",
    "Hash=1;" + "x" * 20000, "URI=", 'URI="', 'Cert="-----BEGIN%20CERTIFICATE-----x"', "By=a,,,;;;URI=b",
    "[::1]:80", "10.0.0.1", "catalog.shop.svc:notaport", "a..b", "-bad-.shop", "x" * 300 + ".svc",
    "1", "0", "2", "yes", "GET", "\x7f", "é", "ÿÿÿ", "%00", "\\u0000",
]  # fmt: skip
AUTHZ_HEADERS = ["host", "x-policyengine-source", "x-forwarded-client-cert", "sec-gpc",
                 "x-policyengine-prefer-cluster", "x-original-uri", "x-original-method"]  # fmt: skip


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) into a JSON value, the root excluded."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((*prefix, key))
            out.extend(paths_of(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((*prefix, index))
            out.extend(paths_of(item, (*prefix, index)))
    return out


def with_value(document: Any, path: tuple[Any, ...], value_json: str) -> bytes:
    """`document` as JSON text with the value at `path` replaced by the text `value_json`."""
    doc = copy.deepcopy(document)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = PLACEHOLDER
    return json.dumps(doc).replace(json.dumps(PLACEHOLDER), value_json, 1).encode("utf-8", "surrogatepass")


def without(document: Any, path: tuple[Any, ...]) -> bytes:
    doc = copy.deepcopy(document)
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return json.dumps(doc).encode()


def corrupt(body: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: truncated, a byte flipped, bad UTF-8, a BOM, trailing garbage."""
    choice = rng.randrange(6)
    if choice == 0:
        return body[: rng.randrange(len(body))]
    if choice == 1:
        at = rng.randrange(len(body))
        return body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :]
    if choice == 2:
        at = rng.randrange(len(body))
        return body[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]) + body[at:]
    if choice == 3:
        return b"\xef\xbb\xbf" + body
    if choice == 4:
        return body + rng.choice([b"x", b"{}", b"\x00", b" ]"])
    return body.replace(b'"', b"'", rng.randrange(1, 5))


class BadRequests:
    """A seeded, endless mix of bad requests of every kind, with a good one every `good_every`."""

    def __init__(self, seed: int, good_every: int = 25) -> None:
        self.rng = random.Random(seed)
        self.good_every = good_every
        self.review = good_review()
        self.review_paths = paths_of(self.review)
        self.route_paths = paths_of(GOOD_ROUTE)

    def __iter__(self) -> Iterator[Request]:
        n = 0
        while True:
            n += 1
            yield self.good(n) if n % self.good_every == 0 else self.bad()

    def good(self, n: int) -> Request:
        kind = ("review", "authz", "decide")[(n // self.good_every) % 3]
        if kind == "review":
            review = good_review()
            return Request("POST", "/validate", {"content-type": JSON}, json.dumps(review).encode(), good="review")
        if kind == "authz":
            return Request("HEAD", "/v1/authz", dict(GOOD_AUTHZ), good="authz")
        return Request("POST", "/v1/decide", {"content-type": JSON}, json.dumps(GOOD_ROUTE).encode(), good="decide")

    def bad(self) -> Request:
        rng = self.rng
        kind = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        endpoint = rng.choice(["/validate", "/mutate"])
        review = self.review
        if kind == "review_value":
            body = with_value(review, rng.choice(self.review_paths), rng.choice(HOSTILE_JSON))
            return Request("POST", endpoint, {"content-type": JSON}, body)
        if kind == "review_missing":
            return Request("POST", endpoint, {"content-type": JSON}, without(review, rng.choice(self.review_paths)))
        if kind == "review_bytes":
            return Request("POST", endpoint, {"content-type": JSON}, corrupt(json.dumps(review).encode(), rng))
        if kind == "review_headers":
            body = json.dumps(review).encode()
            headers = dict(rng.choice(FRAMINGS))
            if headers.get("content-length") == "SHORT":
                headers["content-length"] = str(len(body) - 10)
            return Request("POST", endpoint, headers, body, fresh="content-length" in headers)
        if kind == "decide":
            if rng.random() < 0.3:
                body = without(GOOD_ROUTE, rng.choice(self.route_paths))
            else:
                body = with_value(GOOD_ROUTE, rng.choice(self.route_paths), rng.choice(HOSTILE_JSON))
                body = body if rng.random() < 0.9 else corrupt(body, rng)
            return Request("POST", "/v1/decide", {"content-type": JSON}, body)
        if kind == "authz":
            headers = dict(GOOD_AUTHZ)
            for name in rng.sample(AUTHZ_HEADERS, rng.randint(1, 3)):
                if rng.random() < 0.15:
                    headers.pop(name, None)
                else:
                    headers[name] = rng.choice(HOSTILE_HEADER_VALUES)
            method = rng.choice(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
            return Request(method, rng.choice(AUTHZ_PATHS), headers)
        if kind == "http":
            return Request("GET", "/", fresh=True, raw=rng.choice(NOT_HTTP))
        if kind == "admin":
            token = rng.choice(HOSTILE_HEADER_VALUES)
            return Request("POST", "/v1/admin/reload", {"authorization": f"Bearer {token}"} if token else {})
        return rng.choice(ODD_REQUESTS)


WEIGHTS = {"review_value": 30, "review_missing": 6, "review_bytes": 10, "review_headers": 6, "decide": 14,
           "authz": 20, "http": 6, "admin": 2, "other": 6}  # fmt: skip
FRAMINGS: list[dict[str, str]] = [
    {}, {"content-type": "text/plain"}, {"content-type": "application/json; charset=latin-1"},
    {"content-type": JSON, "content-length": "abc"}, {"content-type": JSON, "content-length": "-1"},
    {"content-type": JSON, "content-length": "SHORT"}, {"content-type": JSON, "content-length": str(10**20)},
    {"content-type": JSON, "expect": "100-continue"},
]  # fmt: skip
AUTHZ_PATHS = ["/v1/authz", "/v1/authz/", "/v1/authz/a/b?c=d", "/v1/authz/%00", "/v1/authz/%ff%fe",
               "/v1/authz/" + "p" * 9000]  # fmt: skip
NOT_HTTP: list[bytes] = [
    b"\x16\x03\x01garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
    b"POST /validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(200)) + b"\r\n",
    b"GET /" + b"u" * 70_000 + b" HTTP/1.1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n: empty\r\n\r\n",
]  # fmt: skip
ODD_REQUESTS: list[Request] = [
    Request("GET", "/validate"), Request("DELETE", "/v1/decide"), Request("POST", "/nowhere", body=b"{}"),
    Request("GET", "/openapi.json"), Request("GET", "/metrics?x=%ff"), Request("GET", "/readyz"),
    Request("PUT", "/mutate", {"content-type": JSON}, b"{}"), Request("POST", "/v1/admin/reload"),
    Request("POST", "/validate", {"content-type": JSON, "transfer-encoding": "chunked"}, b"0\r\n\r\n", fresh=True),
]  # fmt: skip
