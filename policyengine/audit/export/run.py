"""`export(...)`: write one export file in the chosen format, then its manifest beside it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.export.manifest import write_manifest
from policyengine.audit.export.policyreport import write_policyreport
from policyengine.audit.export.tabular import Span, write_csv, write_jsonl
from policyengine.audit.query import ExportFilter, chain_heads
from policyengine.audit.signing import SigningKey
from policyengine.audit.store import display_url
from policyengine.audit.verify import VerifyReport, verify
from policyengine.reports import ReportApi, report_api

# HTML and PDF are the evidence report (policyengine.evidence), written through its own path.
FORMATS: tuple[str, ...] = ("csv", "jsonl", "policyreport", "openreports")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    manifest: Path
    rows: int
    verification: VerifyReport | None


def export(
    engine: Engine,
    fmt: str,
    out: Path,
    flt: ExportFilter,
    *,
    verify_chains: bool | None = None,
    progress: Callable[[int], None] | None = None,
    reports: str | None = None,
    signing_key: SigningKey | None = None,
) -> ExportResult:
    """Write `out` in `fmt` with the rows matching `flt`, then `<out>.manifest.json`.

    `reports` chooses the API of the `policyreport` format ("policyreport" = wgpolicyk8s.io/v1alpha2,
    "openreports" = openreports.io/v1alpha1; the `openreports` format is the latter).

    The chains are verified (and the manifest says so) when `verify_chains`.
    The file is written to a temporary name and renamed, so a failed export leaves no partial file.
    """
    if fmt not in FORMATS:
        raise AuditStoreError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        api = report_api("openreports" if fmt == "openreports" else reports or "policyreport")
    except ValueError as exc:
        raise AuditStoreError(f"--report-api: {exc}") from None
    if reports is not None and fmt not in ("policyreport", "openreports"):
        raise AuditStoreError(f"--report-api applies to --format policyreport, not {fmt}")
    database = display_url(engine.url.render_as_string(hide_password=False))
    do_verify = bool(verify_chains)
    heads = chain_heads(engine)
    verification = verify(engine) if do_verify else None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        span = _write(engine, fmt, tmp, flt, progress, api)
        tmp.replace(out)
    except OSError as exc:
        raise AuditStoreError(f"cannot write {out}: {exc.strerror}; choose another --out") from exc
    finally:
        tmp.unlink(missing_ok=True)
    manifest = write_manifest(
        out,
        fmt=fmt,
        span=span,
        flt=flt,
        heads=heads,
        verified=verification.ok if verification is not None else None,
        database=database,
        signing_key=signing_key,
    )
    return ExportResult(out, manifest, span.rows, verification)


def _write(
    engine: Engine,
    fmt: str,
    path: Path,
    flt: ExportFilter,
    progress: Callable[[int], None] | None,
    api: ReportApi,
) -> Span:
    with path.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            return write_csv(engine, flt, handle, progress)
        if fmt == "jsonl":
            return write_jsonl(engine, flt, handle, progress)
        return write_policyreport(engine, flt, handle, api, progress)
