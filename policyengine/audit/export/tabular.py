"""CSV and JSONL: every matching row, streamed in constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy import Engine

from policyengine.audit.chain import as_utc, format_time
from policyengine.audit.query import ExportFilter, stream_rows, stream_tuples
from policyengine.audit.schema import CHAIN_COLUMNS, CONTENT_COLUMNS

CSV_COLUMNS: tuple[str, ...] = tuple(c for c in CONTENT_COLUMNS if c != "input") + CHAIN_COLUMNS
JSONL_COLUMNS: tuple[str, ...] = CONTENT_COLUMNS + CHAIN_COLUMNS


@dataclass(slots=True)
class Span:
    """How many rows an export wrote and the time range they cover."""

    rows: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def see(self, when: datetime) -> None:
        self.rows += 1
        if self.first is None:
            self.first = when
        self.last = when


Progress = Callable[[int], None]


def write_csv(engine: Engine, flt: ExportFilter, out: TextIO, progress: Progress | None = None) -> Span:
    """One header line, then one line per row; JSON columns as their stored compact JSON text."""
    span = Span()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    time_index = CSV_COLUMNS.index("time")
    dry_run_index = CSV_COLUMNS.index("dry_run")
    first: datetime | None = None
    last: datetime | None = None
    rows = 0
    for row in stream_tuples(engine, flt, CSV_COLUMNS):
        values = list(row)
        when = values[time_index]
        if first is None:
            first = when
        last = when
        values[time_index] = format_time(when)
        values[dry_run_index] = "true" if values[dry_run_index] else "false"
        writer.writerow(values)
        rows += 1
        if progress is not None and rows % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(rows % 10_000)
    span.rows = rows
    span.first = as_utc(first) if first is not None else None
    span.last = as_utc(last) if last is not None else None
    return span


def write_jsonl(engine: Engine, flt: ExportFilter, out: TextIO, progress: Progress | None = None) -> Span:
    """One sorted-key JSON object per line, the stored input included."""
    span = Span()
    for n, row in enumerate(stream_rows(engine, flt, JSONL_COLUMNS), 1):
        when = as_utc(row["time"])
        span.see(when)
        row["time"] = format_time(when)
        row["dry_run"] = bool(row["dry_run"])
        out.write(json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")
        if progress is not None and n % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(span.rows % 10_000)
    return span
