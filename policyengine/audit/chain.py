"""The hash chain over the row format of `rowformat`: each row's hash covers its canonical document, and
its `prev_hash` is the hash of the row before it (`GENESIS` for a chain's first row).

Also the COPY layout `verify` streams on PostgreSQL: the stored columns of a chain's rows in the sorted
key order of the canonical document, so `chainscan.scan` rebuilds each document by filling a template.
"""

from __future__ import annotations

import json

from policyengine.audit.chainscan import Job
from policyengine.audit.rowformat import (
    FORMAT_COLUMN,
    FORMATS,
    GENESIS,
    HASHED,
    as_utc,
    canonical,
    format_time,
    fresh_hash,
    parse_time,
    row_hash,
)

__all__ = [
    "GENESIS",
    "as_utc",
    "canonical",
    "copy_job",
    "copy_query",
    "copy_templates",
    "format_time",
    "fresh_hash",
    "parse_time",
    "row_hash",
]

_ENCODE = json.encoder.encode_basestring
# The COPY columns: every key of the newest format's document but chain_id (the same in every row: the
# templates hold it), in sorted-key order.
_COPIED = tuple(name for name in HASHED[max(FORMATS)] if name != "chain_id")


def copy_query(table: str) -> str:
    """`COPY ... TO STDOUT` of the rows chain_id = %s, seq between %s and %s of `table` in seq order: the
    `_COPIED` columns (time already in the canonical format, dry_run as true/false, input coalesced to
    ''), then the stored hash, then a flag naming the row's template (`f` or `t`: input present or NULL,
    then the format: `f2`). The layout `chainscan.scan` rebuilds documents from; no NULL is written, so
    COPY output holds a backslash only where the data does."""
    columns = []
    for name in _COPIED:
        if name == "time":
            columns.append("""to_char(timezone('UTC', "time"), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""")
        elif name == "dry_run":
            columns.append("dry_run::text")
        elif name == "input":
            columns.append("coalesce(input, '')")
        else:
            columns.append(f'"{name}"')
    columns += ["hash", f"CASE WHEN input IS NULL THEN 't' ELSE 'f' END || {FORMAT_COLUMN}::text"]
    return (
        f"COPY (SELECT {', '.join(columns)} FROM {table} "
        f"WHERE chain_id = %s AND seq BETWEEN %s AND %s ORDER BY seq) TO STDOUT"
    )


def copy_templates(chain_id: str) -> dict[bytes, bytes]:
    """The canonical document of a chain's rows as a bytes %-template over a `copy_query` row (string
    fields inside quotes; the hash and the flag dropped), for each value of the flag column: input
    present or NULL (`f`/`t`) in each format (`f1`, `t2`, ...). A format-1 document has no `format` key:
    its template consumes that column without writing it (`%.0s`)."""
    templates: dict[bytes, bytes] = {}
    chain_literal = '"chain_id":' + _ENCODE(chain_id).replace("%", "%%")
    for fmt in FORMATS:
        keys = HASHED[fmt]
        for flag in ("f", "t"):
            template, written = "{", 0
            for name in sorted([*_COPIED, "chain_id"]):
                if name not in keys:
                    template += "%.0s"  # a column this format does not hash
                    continue
                if name == "chain_id":
                    piece = chain_literal
                elif name in ("dry_run", "latency_us", "seq", FORMAT_COLUMN):
                    piece = f'"{name}":%s'
                elif name == "input" and flag == "t":
                    piece = '"input":null%.0s'
                else:
                    piece = f'"{name}":"%s"'
                template += ("," if written else "") + piece
                written += 1
            templates[f"{flag}{fmt}".encode()] = (template + "}%.0s%.0s").encode()
    return templates


def copy_job(table: str) -> Job:
    """What `chainscan.scan` needs to check rows of `table`: `copy_query` and its column layout (seq,
    prev_hash and hash; the template flag is last)."""
    return Job(
        sql=copy_query(table),
        seq=_COPIED.index("seq"),
        prev_hash=_COPIED.index("prev_hash"),
        hash=len(_COPIED),
    )
