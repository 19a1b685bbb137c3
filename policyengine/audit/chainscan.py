"""Checking a seq range of one chain from a COPY stream: PostgreSQL sends the columns, Python hashes.

This module imports only the standard library and psycopg, so `verify` can run it as a small worker
process (`python -P chainscan.py`, jobs on stdin, answers on stdout) next to its own in-process scan,
and both cores hash. The query and the document templates come from `verify` (built from
`policyengine.audit.chain`), so the canonical encoding is defined in one place.

How a row's canonical document is rebuilt from COPY text output without decoding every field: COPY
escapes a backslash as `\\\\` and newline, carriage return, tab, backspace and form feed as `\\n`,
`\\r`, `\\t`, `\\b`, `\\f`, exactly as JSON does, and leaves `"` alone. So after one `"` -> `\\"` over
the whole buffer, each string field already is its JSON string body, and the document is a `%` of the
fields into a template of the sorted keys. The only differences from JSON are vertical tab (COPY
`\\v`, JSON `\\u000b`) and the other control characters (raw in COPY, `\\u00XX` in JSON): a buffer
holding any of them has its fields rewritten by `json_escapes` before hashing, so every row is hashed
over exactly its canonical bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import psycopg

BATCH_ROWS = 1_000  # rows joined into one buffer for the whole-buffer passes
PROGRESS_ROWS = 10_000  # rows between progress reports

# Control characters to NUL (which text never holds), but tab and newline: COPY's separators.
_CONTROLS_TO_NUL = bytes(0 if c < 32 and c not in (9, 10) else c for c in range(256))
# For the scan's transaction: UTF-8 (the bytes the documents are made of); rows in seq order straight
# from the (chain_id, seq) index, not a bitmap scan and an on-disk sort of whole rows that the planner
# would otherwise pick for large ranges; no parallel workers (the scans already run side by side).
_SETTINGS = (
    "SELECT set_config('client_encoding', 'UTF8', true), set_config('enable_sort', 'off', true), "
    "set_config('max_parallel_workers_per_gather', '0', true)"
)
_FIXES = re.compile(rb"\\.|[\x00-\x08\x0b-\x1f]", re.DOTALL)


class Job(TypedDict):
    """What a scan needs: the COPY query (parameters chain_id, low seq, high seq) and the layout of its
    rows (`chain.copy_query`: the hashed fields but chain_id in sorted-key order, the stored hash, and
    the template flag)."""

    sql: str
    seq: int  # column indexes
    prev_hash: int
    hash: int


class SpanResult(TypedDict):
    """What a scan of seq range low..high saw."""

    rows: int
    first: tuple[int, str] | None  # (seq, prev_hash) of its first row
    last: tuple[int, str] | None  # (seq, hash) of its last row
    break_at: int | None  # first row whose seq, link (to the row before, inside the range) or hash is wrong


def _fix(match: re.Match[bytes]) -> bytes:
    found = match.group()
    if len(found) == 2:  # a COPY escape: all but \v are already JSON's
        return b"\\u000b" if found == b"\\v" else found
    return b"\\u%04x" % found[0]


def json_escapes(field: bytes) -> bytes:
    """A field of COPY text output (with `"` already escaped) as the body of a JSON string."""
    return _FIXES.sub(_fix, field)


def copy_unescape(field: bytes) -> str:
    """The value behind one field of COPY text output (for the span's boundary links)."""
    plain = {b"b": "\b", b"f": "\f", b"n": "\n", b"r": "\r", b"t": "\t", b"v": "\v"}
    return re.sub(
        rb"\\(.)", lambda m: plain.get(m.group(1), m.group(1).decode()).encode(), field, flags=re.DOTALL
    ).decode()


def scan(
    connection: psycopg.Connection[Any],
    job: Job,
    templates: dict[bytes, bytes],
    chain_id: str,
    low: int,
    high: int,
    progress: Callable[[int], None] | None = None,
) -> SpanResult:
    """Stream rows low..high of a chain in seq order and check each: its hash against its content
    (`templates`: `chain.copy_templates(chain_id)`, by the row's flag column), its seq and prev_hash
    against the row before it. Memory: one batch of rows."""
    by_flag = templates
    seq_at, prev_at, hash_at = job["seq"], job["prev_hash"], job["hash"]
    sha256 = hashlib.sha256
    rows = unreported = 0
    first: tuple[int, str] | None = None
    last_raw = b""
    before: list[bytes] | None = None  # the previous batch's last row
    break_at: int | None = None
    with connection.cursor() as cursor:
        cursor.execute(_SETTINGS)
        with cursor.copy(job["sql"], (chain_id, low, high)) as copy:
            for buffer in _batches(copy):
                if first is None:
                    fields = buffer[: buffer.index(b"\n")].split(b"\t")
                    first = (int(fields[seq_at]), copy_unescape(fields[prev_at]))
                last_raw = buffer[buffer.rfind(b"\n", 0, len(buffer) - 1) + 1 : -1]
                odd = (b"\\" in buffer and b"\\v" in buffer) or b"\0" in buffer.translate(_CONTROLS_TO_NUL)
                lines = buffer.replace(b'"', b'\\"').split(b"\n")
                lines.pop()  # after the last newline
                table = [line.split(b"\t") for line in lines]
                if odd:
                    table = [[json_escapes(field) for field in fields] for fields in table]
                if break_at is None:
                    computed = [sha256(by_flag[f[-1]] % tuple(f)).hexdigest().encode() for f in table]
                    stored = [f[hash_at] for f in table]
                    prevs = [f[prev_at] for f in table]
                    seqs = [int(f[seq_at]) for f in table]
                    if before is None:
                        linked = prevs[1:] == stored[:-1]
                        start = seqs[0]
                    else:
                        linked = prevs == [before[hash_at], *stored[:-1]]
                        start = int(before[seq_at]) + 1
                    if computed != stored or not linked or seqs != list(range(start, start + len(seqs))):
                        break_at = _first_break(table, computed, before, seq_at, prev_at, hash_at)
                before = table[-1]
                rows += len(table)
                unreported += len(table)
                if progress is not None and unreported >= PROGRESS_ROWS:
                    progress(unreported)
                    unreported = 0
    if progress is not None and unreported:
        progress(unreported)
    last = None
    if last_raw:
        fields = last_raw.split(b"\t")
        last = (int(fields[seq_at]), copy_unescape(fields[hash_at]))
    return SpanResult(rows=rows, first=first, last=last, break_at=break_at)


def _first_break(
    table: list[list[bytes]],
    computed: list[bytes],
    before: list[bytes] | None,
    seq_at: int,
    prev_at: int,
    hash_at: int,
) -> int:
    """The seq of the first row of a batch whose seq, link or hash is wrong (one is)."""
    for fields, digest in zip(table, computed, strict=True):
        seq = int(fields[seq_at])
        if digest != fields[hash_at]:
            return seq
        if before is not None and (seq != int(before[seq_at]) + 1 or fields[prev_at] != before[hash_at]):
            return seq
        before = fields
    raise AssertionError("no broken row in a batch that did not verify")  # pragma: no cover


def _batches(copy: psycopg.Copy) -> Iterator[bytes]:
    pending: list[Any] = []
    for data in copy:
        pending.append(data)
        if len(pending) == BATCH_ROWS:
            yield b"".join(pending)
            pending = []
    if pending:
        yield b"".join(pending)


def serve() -> None:
    """Worker process: the first stdin line is {"conninfo", "job"}, answered `ready` once connected;
    then one [chain_id, low, high, {flag: template}] per line (flags and templates as latin-1),
    answered with `p <rows>` progress lines and one `r <SpanResult JSON>`; EOF ends it. A failure is
    answered with `e <message>` and ends the worker."""
    out = sys.stdout
    try:
        setup = json.loads(sys.stdin.readline())
        job: Job = setup["job"]
        with psycopg.connect(setup["conninfo"]) as connection:
            out.write("ready\n")
            out.flush()
            for line in sys.stdin:

                def report(rows: int) -> None:
                    out.write(f"p {rows}\n")
                    out.flush()

                chain_id, low, high, sent = json.loads(line)
                templates = {flag.encode("latin-1"): t.encode("latin-1") for flag, t in sent.items()}
                result = scan(connection, job, templates, chain_id, low, high, report)
                connection.rollback()  # read only: end the range's transaction
                out.write("r " + json.dumps(result) + "\n")
                out.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
        pass
    except Exception as exc:  # reported to the parent, which raises it
        out.write("e " + json.dumps(f"{type(exc).__name__}: {exc}") + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
