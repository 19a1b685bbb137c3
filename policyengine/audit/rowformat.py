"""The audit row format, defined once: its columns, the stored text of every value, the canonical
encoding the hash chain covers, and the format version inside it.

Everything else derives from this module: the table (`schema.py`), the writer's rows (`record.py`),
the spool records, the COPY layout that `verify` streams (`chain.py`) and the hash `verify` checks.

Format 2 (written since migration 0002_row_format):

- A row's `hash` is `sha256(canonical(row))`: sorted-key compact JSON (UTF-8, no ASCII escapes) of every
  content column, `chain_id`, `seq`, `prev_hash` and `"format": 2`. The time is written
  `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC); JSON columns enter as the JSON text they are stored as.
- Every text value is stored as `stored_text(value)`: the value itself, except that the two things a
  PostgreSQL text column (and UTF-8) cannot hold are written as JSON writes them: NUL as the six
  characters `\\u0000` and each lone surrogate (e.g. from the JSON `"\\ud800"`) as `\\udXXX`. In a JSON
  column this is exact (parsing the text gives back the very value). In a plain text column (name,
  user, ...) it is the one case where the stored text differs from the value: such a name reads back
  with the escape spelled out. So nothing a request carries can make the database refuse a row.
- JSON columns hold `json_text(value)`: `json.dumps(value, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)` (NaN and infinities as Python writes them, other objects as their `str()`), for
  any depth and any integer size, then `stored_text`.

Format 1 (rows written before 0002; there is no `format` key in their document, and their `format`
column reads 1) is the same encoding without the `format` key; it could hold neither NUL nor lone
surrogates. `canonical` writes either, by the row's `format`.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy import BigInteger, Boolean, DateTime, String, Text
from sqlalchemy.types import TypeEngine

FORMAT = 2  # the format the writer writes
FORMATS = (1, 2)  # the formats verify reads
GENESIS = "0" * 64  # prev_hash of a chain's first row
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
MAX_BIGINT = 2**63 - 1

Kind = Literal["time", "text", "json", "int", "bool"]

# The content columns, in the order exports print them: (name, value kind, SQL type). Text that a request
# can carry is unbounded Text (a bounded column would refuse a long value); labels the server makes itself
# keep their bounds.
CONTENT: tuple[tuple[str, Kind, TypeEngine[Any]], ...] = (
    ("time", "time", DateTime(timezone=True)),
    ("decision_id", "text", String(64)),
    ("source", "text", String(16)),
    ("cluster", "text", Text()),
    ("operation", "text", Text()),
    ("api_version", "text", Text()),
    ("kind", "text", Text()),
    ("namespace", "text", Text()),
    ("name", "text", Text()),
    ("service", "text", Text()),
    ("source_cluster", "text", Text()),
    ("destination_cluster", "text", Text()),
    ("regimes", "text", Text()),  # sorted, comma-joined: "GDPR,PIPL"
    ("decision", "text", String(16)),  # allow | deny | rewrite
    ("enforcement", "text", String(16)),
    ("violations", "json", Text()),
    ("patch", "json", Text()),
    ("permitted_clusters", "json", Text()),
    ("warnings", "json", Text()),
    ("policy_revision", "text", Text()),
    ("engine", "text", String(32)),
    ("latency_us", "int", BigInteger()),  # whole microseconds
    ("dry_run", "bool", Boolean()),
    ("user", "text", Text()),
    ("input_digest", "text", Text()),
    ("input", "json", Text()),  # nullable: the masked input, when recording it is asked for
)
CONTENT_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in CONTENT)
FORMAT_COLUMN = "format"
# How a row is chained: the format its hash is computed in, and its place in its chain.
CHAIN_COLUMNS: tuple[str, ...] = (FORMAT_COLUMN, "chain_id", "seq", "prev_hash", "hash")
# Every stored column but the surrogate key, in the order exports and verify read them.
ROW_COLUMNS: tuple[str, ...] = (*CONTENT_COLUMNS, *CHAIN_COLUMNS)
JSON_COLUMNS: tuple[str, ...] = tuple(name for name, kind, _ in CONTENT if kind == "json")
TEXT_COLUMNS: tuple[str, ...] = tuple(name for name, kind, _ in CONTENT if kind == "text")
NULLABLE: frozenset[str] = frozenset({"input"})

# The keys of each format's document, sorted (the canonical order).
HASHED: dict[int, tuple[str, ...]] = {
    1: tuple(sorted((*CONTENT_COLUMNS, "chain_id", "seq", "prev_hash"))),
    2: tuple(sorted((*CONTENT_COLUMNS, FORMAT_COLUMN, "chain_id", "seq", "prev_hash"))),
}


# -- time ------------------------------------------------------------------------------------------------


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The fixed timestamp format of the canonical encoding and the exports (`...T...:SS.ffffffZ`)."""
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


# -- stored values ------------------------------------------------------------------------------------------

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def stored_text(value: str) -> str:
    """`value` as a text column stores it: NUL and lone surrogates written as JSON escapes, else as is."""
    if "\x00" not in value and (value.isascii() or _UNSTORABLE.search(value) is None):
        return value
    return _UNSTORABLE.sub(_escape, value)


def text_value(value: object) -> str:
    """The stored text of a plain text column (a non-string is written as its `str()`)."""
    if type(value) is str and value.isascii() and "\x00" not in value:  # most values: as they are
        return value
    return stored_text(value if type(value) is str else str(value))


_STRINGS = frozenset({str})
_TEXTS_OF = operator.itemgetter(*TEXT_COLUMNS)


def store_texts(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each text column made its stored text (`text_value`), in place: all of them checked in
    one pass when they are ASCII strings without NUL (the usual row: then each stays as it is)."""
    values = _TEXTS_OF(row)
    if _STRINGS.issuperset(map(type, values)):
        joined = "".join(values)
        if joined.isascii() and "\x00" not in joined:
            return row
    for name in TEXT_COLUMNS:
        row[name] = text_value(row[name])
    return row


def int_value(value: object) -> int:
    """A whole number a BIGINT column takes: rounded, clamped to its range (NaN and non-numbers: 0)."""
    kind = type(value)
    if kind is int and -MAX_BIGINT <= value <= MAX_BIGINT:  # type: ignore[operator]  # most values
        return value  # type: ignore[return-value]
    if kind is float and -MAX_BIGINT <= value <= MAX_BIGINT:  # type: ignore[operator]  # NaN is not
        return round(value)  # type: ignore[call-overload]
    try:
        number = float(value) if not isinstance(value, int) else value  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if isinstance(number, float):
        if math.isnan(number):
            return 0
        number = MAX_BIGINT if number > MAX_BIGINT else -MAX_BIGINT if number < -MAX_BIGINT else round(number)
    return max(-MAX_BIGINT, min(MAX_BIGINT, int(number)))


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def json_text(value: Any) -> str:
    """The stored text of a JSON column: canonical JSON of any value (see the module docstring)."""
    try:
        text = _JSON.encode(value)
    except (TypeError, ValueError, RecursionError):  # mixed keys, a huge integer, deep nesting: the long way
        text = "".join(_iter_json(value))
    return stored_text(text)


def strings_json(values: Any) -> str:
    """`json_text` of a list of strings, through orjson when it can (the same bytes: a test checks every
    code point), the general path otherwise."""
    items = list(values)
    if not items:
        return "[]"
    if _STRINGS.issuperset(map(type, items)):
        try:
            return orjson.dumps(items).decode()
        except TypeError:  # a lone surrogate
            pass
    return json_text(items)


def records_json(values: Any) -> str:
    """`json_text` of a list of flat string-valued dicts (violations), through orjson when it can."""
    items = list(values)
    if not items:
        return "[]"
    types: set[type] = set()
    for item in items:
        types.update(map(type, item), map(type, item.values()))
    if types <= _STRINGS:
        try:
            return orjson.dumps(items, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return json_text(items)


_ENCODE_STR = json.encoder.encode_basestring  # C-accelerated JSON string literal (no ASCII escaping)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _ENCODE_STR(value)
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:  # more digits than Python converts by default
            return str(Decimal(value))
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    return _ENCODE_STR(str(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return _scalar(key)
    return str(key)


def _sorted_items(value: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted(value.items(), key=lambda item: item[0])  # as json.dumps(sort_keys=True) orders
    except TypeError:  # keys of mixed types: by their JSON text
        return sorted(value.items(), key=lambda item: _key(item[0]))


def _iter_json(value: Any) -> Iterator[str]:
    """`json.dumps` as `json_text` defines it, without recursion (any depth, any integer)."""
    stack: list[list[Any]] = []  # per open container: [its items, is it an object, items written]
    current = value
    while True:
        if isinstance(current, Mapping):
            yield "{"
            stack.append([iter(_sorted_items(current)), True, 0])
        elif isinstance(current, list | tuple):
            yield "["
            stack.append([iter(current), False, 0])
        else:
            yield _scalar(current)
        while stack:
            top = stack[-1]
            item: Any = next(top[0], _END)
            if item is _END:
                stack.pop()
                yield "}" if top[1] else "]"
                continue
            separator = "," if top[2] else ""
            top[2] += 1
            if top[1]:
                key, item = item
                yield separator + _ENCODE_STR(_key(key)) + ":"
            elif separator:
                yield separator
            current = item
            break
        else:
            return


_END: Any = object()


# -- the canonical document ----------------------------------------------------------------------------------

_TEMPLATES = {
    fmt: "{" + ",".join(f'"{name}":%s' for name in keys) + "}" for fmt, keys in HASHED.items()
}


def _literal(name: str, value: Any) -> str:
    if name == "time":
        return '"' + format_time(value) + '"'
    if name == "dry_run":
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _ENCODE_STR(value)
    if name in ("latency_us", "seq", FORMAT_COLUMN):  # integers (SQLite may hand back other numbers)
        return str(int(value))
    if name in JSON_COLUMNS:  # a parsed value (e.g. read back from a JSONL export): its stored text
        return _ENCODE_STR(json_text(value))
    return _ENCODE_STR(str(value))


def row_format(row: Mapping[str, Any]) -> int:
    """The format a stored row was written in (1 when it has no `format` value)."""
    value = row.get(FORMAT_COLUMN)
    return 1 if value is None else int(value)


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes the hash of `row` covers, in the row's own format (see the module docstring)."""
    fmt = row_format(row)
    keys = HASHED.get(fmt)
    if keys is None:
        raise ValueError(f"audit row format {fmt} is unknown (this version reads formats {FORMATS})")
    return (_TEMPLATES[fmt] % tuple(_literal(name, row[name]) for name in keys)).encode("utf-8", "surrogatepass")


_FRESH_KEYS = frozenset(HASHED[FORMAT])
_FRESH_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


def fresh_document(row: Mapping[str, Any]) -> bytes:
    """`canonical` of a row as the writer builds it (`record.content_of` plus its chain fields, keys and
    value types exactly the document's), written by orjson from the row itself at a fraction of the cost;
    the general path for any other shape."""
    when = row["time"]
    if row.keys() == _FRESH_KEYS and when.tzinfo is UTC and when.microsecond:  # orjson drops a zero fraction
        try:
            return orjson.dumps(row, option=_FRESH_OPTIONS)
        except TypeError:
            pass
    return canonical(row)


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of `canonical(row)`."""
    return hashlib.sha256(canonical(row)).hexdigest()


def fresh_hash(row: Mapping[str, Any]) -> str:
    """`row_hash` of a row the writer just built (`fresh_document`)."""
    return hashlib.sha256(fresh_document(row)).hexdigest()


def row_from_document(document: bytes) -> dict[str, Any]:
    """The row behind a format-2 canonical document (as the spool keeps rows), its hash included."""
    row: dict[str, Any] = orjson.loads(document)
    row["time"] = parse_time(row["time"])
    row["hash"] = hashlib.sha256(document).hexdigest()
    return row
