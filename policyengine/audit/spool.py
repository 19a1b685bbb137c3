"""The local durable spool: chained rows that could not reach the database, one append-only file per
chain, fsync'd before `record` returns, shipped in order when the database is back.

Format: one JSON object per line (the row with its time in the canonical format). A line cut short by a
crash was never reported as recorded (the fsync had not returned) and is ignored on reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policyengine.audit.chain import format_time, parse_time
from policyengine.audit.errors import AuditStoreError

DEFAULT_SPOOL_DIR = Path("var/audit-spool")


class Spool:
    """The spool file of one chain."""

    def __init__(self, directory: Path, chain_id: str) -> None:
        self.path = Path(directory) / f"{chain_id}.spool"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditStoreError(
                f"audit spool directory {self.path.parent} cannot be created: {exc.strerror}; "
                f"give the process a writable --audit-spool-dir"
            ) from exc
        self._drop_torn_tail()
        self._count = len(self.read()) if self.path.exists() else 0

    def _drop_torn_tail(self) -> None:
        # A crash mid-append leaves a line without its newline; the next append would glue onto it.
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        if raw and not raw.endswith(b"\n"):
            os.truncate(self.path, raw.rfind(b"\n") + 1)

    def __len__(self) -> int:
        return self._count

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows and fsync; raises AuditStoreError when the file cannot be written."""
        data = b"".join(_encode(row) for row in rows)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditStoreError(
                f"audit database unreachable and spool {self.path} cannot be written ({exc.strerror}): "
                f"the decision is NOT recorded; free space or fix permissions on the spool directory"
            ) from exc
        self._count += len(rows)

    def read(self) -> list[dict[str, Any]]:
        """Every complete row in the file, in order."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        rows: list[dict[str, Any]] = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn last line of a crash: never acknowledged
            row["time"] = parse_time(row["time"])
            rows.append(row)
        return rows

    def clear(self) -> None:
        """Empty the file once its rows are committed to the database."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._count = 0


def _encode(row: dict[str, Any]) -> bytes:
    doc = dict(row)
    doc["time"] = format_time(row["time"])
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
