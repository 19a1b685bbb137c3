"""Writing the evidence files: the report (HTML/PDF) and the transfer record (HTML/PDF/CSV/JSON), each
with its manifest (row count, chain heads, SHA-256; signed with the audit signing key when given).

The trail is read through its facade (`AuditTrail`): aggregates, a capped page of rows, the chain heads
and `verify`. A file is written to a temporary name and renamed, so a failed run leaves none behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.export.manifest import write_manifest
from policyengine.audit.export.tabular import Span
from policyengine.audit.query import ExportFilter
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.trail import AuditTrail
from policyengine.audit.verify_report import VerifyReport
from policyengine.evidence import render
from policyengine.evidence.basis import PolicyBook
from policyengine.evidence.report import APPENDIX_LIMIT, Report, build_report
from policyengine.evidence.transfers import DEFAULT_EXPIRING_DAYS

Step = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    manifest: Path
    rows: int
    verification: VerifyReport | None


def collect_report(
    trail: AuditTrail,
    flt: ExportFilter,
    book: PolicyBook,
    *,
    keys: Sequence[VerifyKey] = (),
    verify_chains: bool = True,
    today: date | None = None,
    expiring_within: int = DEFAULT_EXPIRING_DAYS,
    step: Step | None = None,
    verify_progress: Callable[[int], None] | None = None,
) -> Report:
    """The report's content: aggregates, the appendix page, and the chains verified."""
    say = step or (lambda _label: None)
    say("verifying the chains")
    verification = trail.verify(verify_progress, keys=keys) if verify_chains else None
    say("aggregating")
    totals, plain, flagged, revisions = trail.evidence(flt)
    appendix = trail.rows_page(flt, limit=APPENDIX_LIMIT, flagged=True)
    say("deriving the transfer bases")
    return build_report(
        totals=totals,
        plain=plain,
        flagged=flagged,
        revisions=revisions,
        appendix=appendix,
        flt=flt,
        database=trail.where,
        verification=verification,
        book=book,
        today=today,
        expiring_within=expiring_within,
    )


def _write(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        raise AuditStoreError(f"cannot write {out}: {exc.strerror}; choose another --out") from exc
    finally:
        tmp.unlink(missing_ok=True)


def report_bytes(report: Report, fmt: str) -> bytes:
    if fmt not in render.REPORT_FORMATS:
        raise AuditStoreError(f"--output {fmt!r} is not one of {', '.join(render.REPORT_FORMATS)}")
    html = render.report_html(report)
    return html.encode("utf-8") if fmt == "html" else render.pdf(html)


def transfers_bytes(report: Report, fmt: str) -> bytes:
    record = report.transfers
    if fmt == "csv":
        return render.transfers_csv(record).encode("utf-8")
    if fmt == "json":
        return render.transfers_json(record, period=report.period).encode("utf-8")
    if fmt not in render.TRANSFER_FORMATS:
        raise AuditStoreError(f"--output {fmt!r} is not one of {', '.join(render.TRANSFER_FORMATS)}")
    html = render.transfers_html(
        record, period=report.period, generated_at=report.generated_at, database=report.database
    )
    return html.encode("utf-8") if fmt == "html" else render.pdf(html)


def write_evidence(
    trail: AuditTrail,
    report: Report,
    data: bytes,
    fmt: str,
    out: Path,
    flt: ExportFilter,
    *,
    generator: str,
    signing_key: SigningKey | None = None,
) -> Written:
    """Write `data` to `out` and its manifest beside it."""
    _write(out, data)
    heads = trail.chain_heads()
    verification = report.verification
    manifest = write_manifest(
        out,
        fmt=fmt,
        span=Span(report.totals.rows, report.totals.first, report.totals.last),
        flt=flt,
        heads=heads,
        verified=verification.ok if verification is not None else None,
        database=trail.where,
        signing_key=signing_key,
        generator=generator,
        extra={"by_decision": report.totals.by_decision, "generated_for": datetime.now(UTC).date().isoformat()},
    )
    return Written(out, manifest, report.totals.rows, verification)
