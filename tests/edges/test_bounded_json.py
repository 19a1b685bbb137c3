"""The bounded JSON parser (policyengine/bounded_json.py) on its own: property tests (hypothesis, fixed
seed) that it returns exactly what strict JSON within the bounds holds, and refuses anything else with
`JsonRefused` and nothing else, whatever the bytes; plus the edge of each bound."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from policyengine.bounded_json import INT64_MAX, INT64_MIN, MAX_DEPTH, JsonRefused, parse

storable_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | storable_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(storable_text, inner, max_size=5),
    max_leaves=30,
)


@seed(20261114)
@settings(max_examples=300, database=None)
@given(values)
def test_json_within_the_bounds_parses_to_what_it_holds(value: Any) -> None:
    assert parse(json.dumps(value).encode()) == value
    assert parse(json.dumps(value, ensure_ascii=False).encode()) == value


@seed(20261114)
@settings(max_examples=500, database=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_parse_or_are_refused_with_a_json_refusal_only(body: bytes) -> None:
    try:
        parse(body)
    except JsonRefused as refused:
        assert refused.where and refused.what and refused.reason


@pytest.mark.parametrize(
    ("body", "reason", "where"),
    [
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, None, None),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "too_deep", "[0]"),
        ("[" * 100_000, "too_deep", "[0]"),
        (str(INT64_MAX), None, None),
        (str(INT64_MAX + 1), "integer_range", "(body)"),
        (str(INT64_MIN - 1), "integer_range", "(body)"),
        ('{"a": [' + "1" * 4301 + "]}", "integer_range", "a[0]"),
        ('{"a": 1e309}', "number_range", "a"),
        ('{"a": -Infinity}', "not_json", "a"),
        ('{"a.b/c": {"d": "x\\u0000"}}', "bad_string", '["a.b/c"].d'),
        ('{"\\udc80": 1}', "bad_string", '["\\udc80"]'),
        ('["\\ud83d\\ude00"]', None, None),
        ("{'a': 1}", "not_json", "(body)"),
    ],
)
def test_each_bound_at_its_edge(body: str, reason: str | None, where: str | None) -> None:
    if reason is None:
        parse(body.encode())
        return
    with pytest.raises(JsonRefused) as refused:
        parse(body.encode())
    assert refused.value.reason == reason
    assert refused.value.where.startswith(where or ""), refused.value.where


def test_a_refused_float_is_never_returned_as_infinity() -> None:
    with pytest.raises(JsonRefused):
        parse(b"[1e400]")
    assert math.isfinite(parse(b"[1e308]")[0])


def _full_walk(body: bytes) -> tuple[str, str] | Any:
    """What `parse` answers when it always walks everything (`check`): the reference for its shortcuts."""
    from policyengine import bounded_json as bj

    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_int=bj._integer, parse_float=bj._float, parse_constant=bj._constant)
        bj.check(value)
    except UnicodeDecodeError:
        return ("not_utf8", "(body)")
    except json.JSONDecodeError:
        return ("not_json", "(body)")
    except RecursionError:
        return ("too_deep", "")
    except JsonRefused as refused:
        return (refused.reason, refused.where)
    return value


def _nested(depth: int, leaf: str) -> str:
    return "".join('{"k":[' for _ in range(depth // 2)) + leaf + "".join("]}" for _ in range(depth // 2))


@seed(20261202)
@settings(max_examples=400, database=None)
@given(
    st.integers(min_value=0, max_value=140),
    st.sampled_from(['"x"', '"\\u0000"', '"\\ud800"', "1" * 25, "1e999", "NaN", "[]", '"\\u00e9"', "12"]),
)
def test_the_shortcuts_answer_as_the_full_walk_does(depth: int, leaf: str) -> None:
    """`parse` skips the walk of strings when the text has no `\\u` escape and no hook refused a number,
    and the depth walk when the text has few brackets; at every depth and with each kind of bad leaf it
    answers exactly what walking everything answers."""
    body = _nested(depth, leaf).encode()
    expected = _full_walk(body)
    try:
        got: Any = parse(body)
    except JsonRefused as refused:
        got = (refused.reason, refused.where)
    if expected == ("too_deep", ""):  # too deep for the recursive parser: only the reason is compared
        assert got[0] == "too_deep"
    else:
        assert got == expected


def _answer(parser: Any, body: bytes) -> Any:
    try:
        return ("value", parser(body))
    except JsonRefused as refused:
        return ("refused", refused.reason, refused.where)


numbers = (
    st.integers(min_value=-(10**22), max_value=10**22)
    | st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 2**64 - 1, 2**64, 10**18, -(10**18)])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["1e308", "1e309", "-1e400", "1e-400", "123456789012345678901.5", "1E+2", "-0"])
)
awkward = st.recursive(
    numbers | storable_text | st.text(max_size=10) | st.none() | st.booleans(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _render(value: Any, ascii_only: bool) -> str:
    """JSON text of `value`, number literals (strings of a digit or - and a digit) written bare, other
    strings as UTF-8 or (`ascii_only`) with `\\u` escapes."""
    if isinstance(value, list):
        return "[" + ",".join(_render(v, ascii_only) for v in value) + "]"
    if isinstance(value, dict):
        items = (json.dumps(k, ensure_ascii=ascii_only) + ":" + _render(v, ascii_only) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, str) and value.lstrip("-")[:1].isdigit():
        return value
    return json.dumps(value, ensure_ascii=ascii_only)


@seed(20261202)
@settings(max_examples=600, database=None)
@given(awkward, st.booleans())
def test_the_orjson_way_answers_as_the_checked_way(value: Any, escaped: bool) -> None:
    """`parse` lets orjson parse bodies with no `\\u` escape and no 19-digit run: for any JSON (numbers
    at and past the 64-bit and double edges, any text, escaped or raw UTF-8) it answers exactly what the
    checked way answers, the value or the refusal with its reason and path."""
    from policyengine.bounded_json import parse_checked

    body = _render(value, escaped).encode("utf-8", "surrogatepass")
    assert _answer(parse, body) == _answer(parse_checked, body), body


@seed(20261202)
@settings(max_examples=500, database=None)
@given(st.binary(max_size=120))
def test_the_orjson_way_answers_any_bytes_as_the_checked_way(body: bytes) -> None:
    from policyengine.bounded_json import parse_checked

    assert _answer(parse, body) == _answer(parse_checked, body), body
