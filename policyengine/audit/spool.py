"""The local durable spool: chained rows that could not reach the database, one append-only file per
chain, fsync'd before `record` returns, shipped in order when the database is back.

Format: a sequence of records, each `MAGIC | length (4 bytes, big endian) | CRC-32 of the payload (4
bytes) | payload`, the payload being the row's canonical document (`rowformat`, format 2), so the row's
hash is the SHA-256 of the payload. A record cut short (a crash mid-append, a full disk) fails its
length or CRC: at the end of the file it is dropped (it was never acknowledged: `append` had not
returned), and a failed append cuts the file back to where it started, so a later record never merges
into a torn one. A damaged record in the middle is skipped up to the next MAGIC (and said so).
Files written before this format (one JSON row per line) are still read.

The process writing a chain's spool holds an exclusive `flock` on it for its whole life; a spool whose
lock can be taken belongs to no live process (killed, or stopped during an outage) and `orphans` hands
it to whoever ships it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.rowformat import canonical, parse_time, row_from_document

log = logging.getLogger("policyengine.audit")

DEFAULT_SPOOL_DIR = Path("var/audit-spool")
SUFFIX = ".spool"
MAGIC = b"\xa5PE2"
_HEADER = struct.Struct(">4sII")  # magic, payload length, CRC-32
MAX_RECORD = 64 * 1024 * 1024  # a longer length field is damage, not a record
DEFAULT_MIN_FREE_BYTES = 1024 * 1024  # below this much free space the spool counts as full
READ_CHUNK = 4 * 1024 * 1024  # bytes read at a time when shipping


def frame(row: dict[str, Any]) -> bytes:
    """One spool record of a chained row."""
    payload = canonical(row)
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _records(raw: bytes) -> Iterator[tuple[dict[str, Any], int]]:
    """Each whole record of `raw` as (row, the offset just after it); a damaged record is skipped up to
    the next MAGIC (logged); a torn or cut-off record at the end ends the iteration."""
    offset = 0
    size = _HEADER.size
    while offset + size <= len(raw):
        magic, length, crc = _HEADER.unpack_from(raw, offset)
        end = offset + size + length
        if magic == MAGIC and length <= MAX_RECORD:
            if end > len(raw):
                return  # torn, or beyond what was read
            payload = raw[offset + size : end]
            if zlib.crc32(payload) == crc:
                yield row_from_document(payload), end
                offset = end
                continue
        following = raw.find(MAGIC, offset + 1)
        if following < 0:
            return
        log.error("audit spool: a damaged record skipped (%d bytes)", following - offset)
        offset = following


def parse(raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """(rows, bytes up to the end of the last whole record) of a spool file's bytes."""
    if raw[:1] == b"{":
        return _parse_lines(raw), len(raw)
    rows: list[dict[str, Any]] = []
    good_end = 0
    for row, end in _records(raw):
        rows.append(row)
        good_end = end
    return rows, good_end


def _parse_lines(raw: bytes) -> list[dict[str, Any]]:
    """The rows of a spool written before records were framed (one JSON row per line, format 1)."""
    rows = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line of a crash: never acknowledged
        row["time"] = parse_time(row["time"])
        row.setdefault("format", 1)
        rows.append(row)
    return rows


class Spool:
    """The spool file of one chain, locked by the process that opens it."""

    def __init__(self, directory: Path, chain_id: str, *, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> None:
        self.path = Path(directory) / f"{chain_id}{SUFFIX}"
        self.min_free_bytes = min_free_bytes
        self.last_error: str | None = None  # why the last append failed, until one succeeds
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise AuditStoreError(
                f"audit spool {self.path} cannot be opened: {exc.strerror}; "
                f"give the process a writable --spool-dir"
            ) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            raise AuditStoreError(
                f"audit spool {self.path} is held by another live process: give each process its own chain_id"
            ) from exc
        rows, good_end = parse(self._read())
        if good_end < os.fstat(self._fd).st_size and not self._legacy():
            os.ftruncate(self._fd, good_end)  # a torn tail: never acknowledged
        self._count = len(rows)

    def _read(self) -> bytes:
        return os.pread(self._fd, os.fstat(self._fd).st_size, 0)

    def _legacy(self) -> bool:
        return os.pread(self._fd, 1, 0) == b"{"

    def __len__(self) -> int:
        return self._count

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows and fsync; raises AuditStoreError (the file cut back to where it was) on failure."""
        data = b"".join(frame(row) for row in rows)
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            self.last_error = f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc.strerror}"
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            raise AuditStoreError(
                f"audit database unreachable and spool {self.path} cannot be written ({exc.strerror}): "
                f"the decision is NOT recorded; free space or fix permissions on the spool directory"
            ) from exc
        self.last_error = None
        self._count += len(rows)

    def size(self) -> int:
        """Bytes in the file."""
        return os.fstat(self._fd).st_size

    def read_from(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` whole rows from byte `offset` on, and the offset after the last of them."""
        size = self.size()
        if self._legacy():
            return (_parse_lines(self._read()), size) if offset == 0 else ([], size)
        rows: list[dict[str, Any]] = []
        want = READ_CHUNK
        while len(rows) < limit and offset < size:
            raw = os.pread(self._fd, want, offset)
            start, last_end = len(rows), 0
            for row, end in _records(raw):
                rows.append(row)
                last_end = end
                if len(rows) == limit:
                    break
            if len(rows) == start:
                if want >= size - offset:
                    break  # a torn tail
                want *= 4  # a record longer than the chunk
                continue
            offset += last_end
            want = READ_CHUNK
        return rows, offset

    def read(self) -> list[dict[str, Any]]:
        """Every whole row in the file, in order."""
        return parse(self._read())[0]

    def clear(self) -> None:
        """Empty the file once its rows are in the database."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self._count = 0

    def free_bytes(self) -> int:
        """Free space on the spool's file system (0 when it cannot be read)."""
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize

    def has_room(self) -> bool:
        """True when a row can be spooled now: the last append worked and space is left."""
        return self.last_error is None and self.free_bytes() >= self.min_free_bytes

    def close(self, *, remove_if_empty: bool = True) -> None:
        """Release the file (and its lock); an empty spool is removed."""
        if self._fd < 0:
            return
        if remove_if_empty and self._count == 0 and os.fstat(self._fd).st_size == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = -1


def orphans(directory: Path, *, own: Path | None = None) -> list[Spool]:
    """The spools in `directory` that no live process holds (locked now by this process), oldest first;
    `own` (this writer's file) is left out."""
    found: list[tuple[float, Spool]] = []
    try:
        candidates = sorted(Path(directory).glob(f"*{SUFFIX}"))
    except OSError:
        return []
    for path in candidates:
        if own is not None and path == own:
            continue
        try:
            mtime = path.stat().st_mtime
            spool = Spool(path.parent, path.name[: -len(SUFFIX)], min_free_bytes=0)
        except (OSError, AuditStoreError):
            continue  # held by a live process, or gone meanwhile
        found.append((mtime, spool))
    return [spool for _, spool in sorted(found, key=lambda item: item[0])]
