"""The hash chain: a canonical encoding of a row and the SHA-256 that links it to its predecessor.

`hash = sha256(canonical(row))` where the canonical encoding is sorted-key compact JSON of every content
column plus `chain_id`, `seq` and `prev_hash`, with the time written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
(UTC). The first row of a chain has `prev_hash = GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from policyengine.audit.schema import CONTENT_COLUMNS

GENESIS = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The fixed timestamp format of the canonical encoding and the exports."""
    return as_utc(value).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def canonical(row: Mapping[str, Any]) -> bytes:
    """Sorted-key compact JSON of the hashed fields of `row` (content columns, chain_id, seq, prev_hash)."""
    doc: dict[str, Any] = {name: row[name] for name in CONTENT_COLUMNS}
    doc["time"] = format_time(row["time"])
    doc["dry_run"] = bool(row["dry_run"])
    doc["latency_us"] = float(row["latency_us"])
    doc["chain_id"] = row["chain_id"]
    doc["seq"] = int(row["seq"])
    doc["prev_hash"] = row["prev_hash"]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical encoding of `row`."""
    return hashlib.sha256(canonical(row)).hexdigest()
