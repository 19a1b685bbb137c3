"""Hypothesis strategies for hostile requests: AdmissionReviews, routes for /v1/decide and /v1/authz
header sets, each built from a good request with some of its values replaced by hostile ones (generated
text of any code points, including lone surrogates and NUL; integers far outside 64 bits; the JSON
texts of tests/fuzz/hostile.py), fields dropped, or wrong types.

A JSON body is drawn as text, so it can carry values `json.dumps` would refuse to write; `hostile_json`
is one value as JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from fuzz.hostile import (
    AUTHZ_HEADERS,
    GOOD_AUTHZ,
    GOOD_ROUTE,
    HOSTILE_HEADER_VALUES,
    HOSTILE_JSON,
    Request,
    good_review,
    paths_of,
    with_value,
    without,
)

JSON = "application/json"


def _json_text(value: Any) -> str:
    """JSON text of a generated value; surrogates and NUL are written as escapes, as a client would."""
    return json.dumps(value, ensure_ascii=True)


scalars = st.one_of(
    st.text(max_size=300).map(_json_text),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3).map(
        _json_text
    ),
    st.integers().map(str),
    st.integers(min_value=2**63 - 2, max_value=2**70).map(str),
    st.integers(min_value=19, max_value=6000).map(lambda digits: "9" * digits),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans().map(_json_text),
    st.none().map(_json_text),
)

nested = st.builds(
    lambda depth, pair: pair[0] * depth + "0" + pair[1] * depth,
    st.integers(min_value=1, max_value=1200),
    st.sampled_from([("[", "]"), ('{"k": ', "}")]),
)

hostile_json = st.one_of(
    st.sampled_from(HOSTILE_JSON),
    scalars,
    nested,
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
            st.dictionaries(st.text(max_size=20), inner, max_size=4).map(
                lambda d: "{" + ",".join(f"{_json_text(k)}: {v}" for k, v in d.items()) + "}"
            ),
        ),
        max_leaves=12,
    ),
)


@st.composite
def hostile_document(draw: st.DrawFn, document: Any) -> bytes:
    """`document` as JSON bytes with 1-3 of its values replaced by hostile ones, or one field dropped."""
    paths = paths_of(document)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        return without(document, draw(st.sampled_from(paths)))
    body = with_value(document, draw(st.sampled_from(paths)), draw(hostile_json))
    for _ in range(draw(st.integers(0, 2))):
        try:
            current = json.loads(body)
            places = paths_of(current) or paths
        except (ValueError, RecursionError):
            break  # no longer JSON the standard library (or a recursive walk) reads: send it as it is
        value = draw(hostile_json)
        try:
            body = with_value(current, draw(st.sampled_from(places)), value)
        except RecursionError:
            break
    return body


admission_reviews = st.builds(
    lambda endpoint, body: Request("POST", endpoint, {"content-type": JSON}, body),
    st.sampled_from(["/validate", "/mutate"]),
    st.builds(good_review).flatmap(hostile_document),
)

routes = st.builds(
    lambda body: Request("POST", "/v1/decide", {"content-type": JSON}, body), hostile_document(GOOD_ROUTE)
)

header_values = st.one_of(
    st.sampled_from(HOSTILE_HEADER_VALUES),
    # header values are latin-1 text without CR, LF or NUL (anything else never reaches the app)
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=600),
)


@st.composite
def authz_requests(draw: st.DrawFn) -> Request:
    headers = dict(GOOD_AUTHZ)
    for name in draw(st.lists(st.sampled_from(AUTHZ_HEADERS), min_size=1, max_size=4, unique=True)):
        value = draw(st.one_of(st.none(), header_values))
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value.strip()
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = "/v1/authz" + draw(
        st.one_of(st.just(""), st.text(alphabet="abc/%0123456789?=&.-_", max_size=60).map(lambda p: "/" + p))
    )
    return Request(method, path, headers)


hostile_requests = st.one_of(admission_reviews, routes, authz_requests())
