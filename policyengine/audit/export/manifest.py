"""The manifest written beside every export: what it covers and the chain heads it was cut from."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyengine.audit.chain import format_time
from policyengine.audit.export.tabular import Span
from policyengine.audit.query import ExportFilter, Head


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def write_manifest(
    out: Path,
    *,
    fmt: str,
    span: Span,
    flt: ExportFilter,
    heads: list[Head],
    verified: bool | None,
    database: str,
) -> Path:
    """Write `<out>.manifest.json` and return its path."""
    doc: dict[str, Any] = {
        "file": out.name,
        "format": fmt,
        "sha256": file_sha256(out),
        "bytes": out.stat().st_size,
        "rows": span.rows,
        "time_range": {
            "first": format_time(span.first) if span.first else None,
            "last": format_time(span.last) if span.last else None,
        },
        "filters": flt.describe(),
        "chain_heads": [{"chain_id": h.chain_id, "seq": h.seq, "hash": h.hash} for h in heads],
        "chains_verified": verified,
        "database": database,
        "generated_at": format_time(datetime.now(UTC)),
        "generator": "policyengine audit export",
    }
    path = manifest_path(out)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
