"""Untrusted JSON parsed with bounds: the one parser of every request body the server takes.

`parse(body)` returns plain JSON values (dict, list, str, int, float, bool, None) or raises `JsonRefused`
saying what was wrong and where: a JSON path such as `request.object.metadata.name`, or the line and
column of a syntax error. It refuses what a request may not carry because the server could not hold it
safely further down (encoders, the audit database, JSON patches, Kubernetes itself):

- bytes that are not UTF-8, and anything that is not strict JSON (`NaN`, `Infinity`, trailing text);
- nesting deeper than `MAX_DEPTH` arrays and objects (encoders and copies recurse; Kubernetes objects
  nest about 15 levels);
- integers outside the signed 64-bit range Kubernetes stores (literals of any length are measured, never
  converted: Python refuses to convert more than 4,300 digits), and numbers too large for a double;
- strings and keys holding a lone UTF-16 surrogate (`"\\ud800"`: not Unicode, cannot be encoded as UTF-8)
  or a NUL character (PostgreSQL text cannot store it, and no Kubernetes name or value carries one).

The checked way: the standard library's C parser with hooks for numbers (so no integer literal is ever
converted unchecked); one walk over the result checks depth and strings and turns the markers the hooks
left into errors with their path. Most request bodies take a shorter way: bytes with no `\\u` escape
(the only way a NUL or a lone surrogate gets into UTF-8 JSON) and no run of 19 digits (the shortest
integer outside 64 bits) can hold nothing the bounds refuse but depth, so orjson parses them and the
depth is checked as below. Whatever orjson refuses is parsed again the checked way, which says what is
wrong and where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

MAX_DEPTH = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_SHORT_INT_DIGITS = 18  # any literal of at most 18 digits fits in 64 bits
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class JsonRefused(ValueError):
    """A body the server will not take: `what` was wrong, `where` (a JSON path), `reason` for metrics."""

    def __init__(self, reason: str, what: str, where: str = "(body)") -> None:
        super().__init__(f"{where}: {what}")
        self.reason = reason
        self.what = what
        self.where = where

    @property
    def message(self) -> str:
        return f"{self.where}: {self.what}"


class _Refused:
    """What a number hook leaves in place of a value it will not return; the walk reports it."""

    __slots__ = ("reason", "what")

    def __init__(self, reason: str, what: str) -> None:
        self.reason = reason
        self.what = what


def _integer(literal: str) -> int | _Refused:
    digits = len(literal) - (literal[0] == "-")
    if digits <= _SHORT_INT_DIGITS:
        return int(literal)
    if digits <= 20:
        value = int(literal)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    shown = literal if len(literal) <= 24 else f"{literal[:12]}…({digits} digits)"
    return _Refused(
        "integer_range",
        f"integer {shown} is outside the signed 64-bit range Kubernetes stores "
        f"({INT64_MIN}..{INT64_MAX}): send a smaller number, or a string",
    )


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    if math.isfinite(value):
        return value
    shown = literal if len(literal) <= 24 else literal[:20] + "…"
    return _Refused("number_range", f"number {shown} is too large for a 64-bit float")


def _constant(name: str) -> _Refused:
    return _Refused("not_json", f"{name} is not JSON: send a number or null")


# Digits to "0", every other byte to " ": a run of 19 zeros in the translation is a run of 19 digits.
_DIGIT_RUNS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_RUN = b"0" * (_SHORT_INT_DIGITS + 1)


def parse(body: bytes | str) -> Any:
    """The JSON value of `body`; raises `JsonRefused` for anything outside the bounds above."""
    if isinstance(body, bytes) and b"\\u" not in body and _LONG_RUN not in body.translate(_DIGIT_RUNS):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return parse_checked(body)  # which says what is wrong and where
        if _shallow(value, body.count(b"[") + body.count(b"{")):
            return value
    return parse_checked(body)


def parse_checked(body: bytes | str) -> Any:
    """`parse` the checked way only (see the module docstring)."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused("not_utf8", f"the body is not UTF-8 (byte {exc.start}): send UTF-8 JSON") from None
    else:
        text = body
    refused: list[_Refused] = []

    def integer(literal: str) -> int | _Refused:
        value = _integer(literal)
        if type(value) is _Refused:
            refused.append(value)
        return value

    def number(literal: str) -> float | _Refused:
        value = _float(literal)
        if type(value) is _Refused:
            refused.append(value)
        return value

    def constant(name: str) -> _Refused:
        refused.append(_constant(name))
        return refused[-1]

    try:
        value = json.loads(text, parse_int=integer, parse_float=number, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise JsonRefused("not_json", f"not JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # nested some 1,000 deep: find where it passed the limit without recursing
        raise JsonRefused(
            "too_deep", f"nested deeper than {MAX_DEPTH} arrays and objects", _where(_too_deep_at(text))
        ) from None
    # The full walk finds what is wrong and where. Most bodies need only the depth walk: no hook refused
    # a number, and the text holds no `\u` escape, the only way a NUL or a lone surrogate can get into
    # UTF-8 JSON (strict parsing refuses raw control characters; valid UTF-8 holds no surrogates).
    # A text with at most MAX_DEPTH brackets cannot nest deeper (most requests): no walk at all.
    if (
        refused
        or not isinstance(body, bytes)
        or "\\u" in text
        or not _shallow(value, text.count("[") + text.count("{"))
    ):
        check(value)
    return value


def _shallow(root: Any, brackets: int) -> bool:
    """Whether no array or object in `root` is nested deeper than MAX_DEPTH (`brackets`: how many `[` and
    `{` its text holds, strings included: at most MAX_DEPTH of them cannot nest deeper)."""
    if (type(root) is not dict and type(root) is not list) or brackets <= MAX_DEPTH:
        return True
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        for item in value.values() if type(value) is dict else value:
            kind = type(item)
            if kind is dict or kind is list:
                if depth >= MAX_DEPTH:
                    return False
                stack.append((item, depth + 1))
    return True


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _too_deep_at(text: str) -> Any:
    """The trail of the first container nested deeper than MAX_DEPTH, by scanning tokens (for text too
    deep for the recursive parser; it stops at that container)."""
    # One entry per open container: [is_object, current key or index, expecting a key].
    open_: list[list[Any]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            if len(open_) >= MAX_DEPTH:
                trail: Any = None
                for entry in open_:
                    trail = (trail, entry[1])
                return trail
            open_.append([token == "{", 0 if token == "[" else "", token == "{"])
        elif token in "]}":
            if open_:
                open_.pop()
        elif token == ",":
            if open_:
                top = open_[-1]
                if top[0]:
                    top[2] = True
                else:
                    top[1] += 1
        elif token == ":":
            if open_:
                open_[-1][2] = False
        elif open_ and open_[-1][0] and open_[-1][2]:
            try:
                open_[-1][1] = json.loads(token)
            except ValueError:
                open_[-1][1] = token.strip('"')
    return None


def check(root: Any) -> None:
    """Walk a parsed value once: depth, strings, keys and the hooks' markers (see the module docstring)."""
    # Each entry: the value, its depth (containers above and including it), and its path as a linked
    # list (parent, key) built into text only when something is refused.
    stack: list[tuple[Any, int, Any]] = [(root, 1, None)]
    while stack:
        value, depth, trail = stack.pop()
        kind = type(value)
        if kind is dict:
            if depth > MAX_DEPTH:
                raise JsonRefused("too_deep", f"nested deeper than {MAX_DEPTH} arrays and objects", _where(trail))
            for key, item in value.items():
                _check_text(key, (trail, key), "key")
                _check_item(item, depth, (trail, key), stack)
        elif kind is list:
            if depth > MAX_DEPTH:
                raise JsonRefused("too_deep", f"nested deeper than {MAX_DEPTH} arrays and objects", _where(trail))
            for index, item in enumerate(value):
                _check_item(item, depth, (trail, index), stack)
        else:
            _check_item(value, depth - 1, trail, stack)


def _check_item(item: Any, depth: int, trail: Any, stack: list[tuple[Any, int, Any]]) -> None:
    kind = type(item)
    if kind is dict or kind is list:
        stack.append((item, depth + 1, trail))
    elif kind is str:
        _check_text(item, trail, "string")
    elif kind is _Refused:
        raise JsonRefused(item.reason, item.what, _where(trail))


def _check_text(text: str, trail: Any, noun: str) -> None:
    if "\x00" in text:
        raise JsonRefused(
            "bad_string",
            f"the {noun} holds a NUL character (\\u0000), which the audit trail cannot store: remove it",
            _where(trail),
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(text[exc.start])
            raise JsonRefused(
                "bad_string",
                f"the {noun} holds a lone surrogate (\\u{code:04x}), which is not Unicode: send valid UTF-16 "
                "pairs or the character itself",
                _where(trail),
            ) from None


def _where(trail: Any) -> str:
    """The JSON path of a trail: `request.object.metadata["a.b/c"][2]`, `(body)` for the root."""
    parts: list[str | int] = []
    while trail is not None:
        trail, key = trail
        parts.append(key)
    parts.reverse()
    if len(parts) > 16:  # a path as deep as the nesting limit: its start and end say enough
        parts = [*parts[:8], f"[…{len(parts) - 12} more levels…]", *parts[-4:]]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("[…"):
            out += part
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part[:80] + ("…" if len(part) > 80 else "")) + "]"
    return out or "(body)"
