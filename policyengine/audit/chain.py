"""The hash chain: a canonical encoding of a row and the SHA-256 that links it to its predecessor.

`hash = sha256(canonical(row))` where the canonical encoding is sorted-key compact JSON of every content
column plus `chain_id`, `seq` and `prev_hash`, with the time written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
(UTC). Structured columns (violations, patch, ...) enter as the canonical JSON text they are stored as.
The first row of a chain has `prev_hash = GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from policyengine.audit.chainscan import Job
from policyengine.audit.schema import CONTENT_COLUMNS, JSON_COLUMNS

GENESIS = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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


_HASHED = tuple(sorted((*CONTENT_COLUMNS, "chain_id", "seq", "prev_hash")))
_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in _HASHED) + "}"
_ENCODE_STR = json.encoder.encode_basestring  # C-accelerated JSON string literal (no ASCII escaping)


def _literal(name: str, value: Any) -> str:
    if name == "time":
        return '"' + format_time(value) + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _ENCODE_STR(value)
    if name in ("latency_us", "seq"):  # integers
        return str(int(value))
    if name in JSON_COLUMNS:  # a parsed value (e.g. read back from JSONL) is re-encoded canonically
        return _ENCODE_STR(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return json.dumps(value, ensure_ascii=False)


def canonical(row: Mapping[str, Any]) -> bytes:
    """Sorted-key compact JSON of the hashed fields of `row` (content columns, chain_id, seq, prev_hash).

    Written through a precomputed template in sorted key order: the same bytes as
    `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of the document with
    the time formatted, `dry_run` a boolean and `latency_us` an integer, at about half the cost.
    """
    return (_TEMPLATE % tuple(_literal(name, row[name]) for name in _HASHED)).encode()


# The writer's rows come from `content_of`: text columns are str (JSON columns as their canonical text),
# latency_us and seq int, dry_run bool, input str or None. For those, orjson writes the same bytes as
# `canonical` (sorted keys, compact, UTF-8, the same string escapes: a test checks every code point) at
# half the cost. Anything else takes the general path.
_JSON_TEXT = ("violations", "patch", "permitted_clusters", "warnings", "input")
_FIELDS = operator.itemgetter(*_HASHED)


def _canonical_fresh(row: Mapping[str, Any]) -> bytes | None:
    """`canonical` of a row as the writer builds it; None for any other shape."""
    if type(row["latency_us"]) is not int or type(row["seq"]) is not int or type(row["dry_run"]) is not bool:
        return None
    if any(type(row[name]) is not str for name in _JSON_TEXT if row[name] is not None):
        return None
    if row.keys() == _HASHED_SET:
        return _row_as_document(row)
    document = dict(zip(_HASHED, _FIELDS(row), strict=True))
    document["time"] = format_time(document["time"])
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value orjson does not take as canonical writes it (e.g. a lone surrogate)
        return None


def _row_as_document(row: Mapping[str, Any]) -> bytes | None:
    """The canonical encoding of a row whose keys and value types are exactly the document's, written
    by orjson from the row itself; None when only the general path can write it."""
    when = row["time"]
    if when.tzinfo is not UTC or not when.microsecond:  # orjson drops a zero fraction; format_time not
        document = {**row, "time": format_time(when)}
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
    try:
        return orjson.dumps(row, option=_ROW_OPTIONS)  # an aware UTC time, written as format_time does
    except TypeError:  # a lone surrogate: the general path reports it
        return None


_HASHED_SET = frozenset(_HASHED)
_ROW_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


def copy_query(table: str) -> str:
    """`COPY ... TO STDOUT` of the rows chain_id = %s, seq between %s and %s of `table` in seq order:
    one column per hashed field but chain_id (the same in every row: `copy_templates` holds it), in
    sorted-key order (time already in the canonical format, dry_run as true/false, input coalesced to
    ''), then the stored hash, then `input IS NULL`. The layout `chainscan.scan` rebuilds documents
    from; no NULL is written, so COPY output holds a backslash only where the data does."""
    columns = []
    for name in _HASHED:
        if name == "time":
            columns.append("""to_char(timezone('UTC', "time"), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""")
        elif name == "dry_run":
            columns.append("dry_run::text")
        elif name == "input":
            columns.append("coalesce(input, '')")
        elif name != "chain_id":
            columns.append(f'"{name}"')
    columns += ["hash", "input IS NULL"]
    return (
        f"COPY (SELECT {', '.join(columns)} FROM {table} "
        f"WHERE chain_id = %s AND seq BETWEEN %s AND %s ORDER BY seq) TO STDOUT"
    )


def copy_templates(chain_id: str) -> tuple[bytes, bytes]:
    """The canonical document of a chain's rows as a bytes %-template over a `copy_query` row (string
    fields inside quotes, the hash and the null flag dropped): for a row with an input, and for one
    without."""
    slots = []
    for name in _HASHED:
        if name == "chain_id":
            slot = '"chain_id":' + _ENCODE_STR(chain_id).replace("%", "%%")
        elif name in ("dry_run", "latency_us", "seq"):
            slot = f'"{name}":%s'
        else:
            slot = f'"{name}":"%s"'
        slots.append(slot)
    template = "{" + ",".join(slots) + "}%.0s%.0s"
    return template.encode(), template.replace('"input":"%s"', '"input":null%.0s').encode()


def copy_job(table: str) -> Job:
    """What `chainscan.scan` needs to check rows of `table`: `copy_query` and its column layout (seq,
    prev_hash and hash; the null flag is last)."""
    columns = [name for name in _HASHED if name != "chain_id"]
    return Job(
        sql=copy_query(table),
        seq=columns.index("seq"),
        prev_hash=columns.index("prev_hash"),
        hash=len(columns),
    )


def new_row_hash(row: Mapping[str, Any]) -> str:
    """`row_hash` of a row the writer just built from `content_of` and its chain fields (its keys and
    value types are then exactly the document's, so only the time needs a look)."""
    document = _row_as_document(row)
    return row_hash(row) if document is None else hashlib.sha256(document).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical encoding of `row` (a fast path for rows as the writer builds them)."""
    document = _canonical_fresh(row)
    return hashlib.sha256(canonical(row) if document is None else document).hexdigest()
