"""`policyengine audit verify|export|prune` and `policyengine db upgrade`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.store import display_url, make_engine, require_migrated, resolve_url

app = typer.Typer(help="Audit trail: verify, export, prune.", no_args_is_help=True)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)


@app.callback()
def audit_group() -> None:
    """Audit trail: verify, export, prune."""


@db_app.callback()
def db_group() -> None:
    """Audit database schema (Alembic migrations)."""


err = Console(stderr=True)
out = Console()
DB_HELP = "Audit database URL (default $POLICYENGINE_AUDIT_DB or sqlite:///./var/audit.db)."
PROGRESS_MIN_ROWS = 50_000


def _fail(exc: AuditStoreError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _database_error(db: str | None, exc: SQLAlchemyError) -> typer.Exit:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    where = display_url(resolve_url(db))
    err.print(
        f"error: audit database {where}: {reason[0] if reason else type(exc).__name__}; "
        f"check that it is reachable and migrated (`policyengine db upgrade --db {where}`)",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(2)


def _engine(db: str | None) -> Engine:
    engine = make_engine(db)
    require_migrated(engine)
    return engine


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for large tables when stderr is a terminal."""
    if total < PROGRESS_MIN_ROWS or not err.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@db_app.command("upgrade")
def db_upgrade(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Create or migrate the audit schema (Alembic migrations in migrations/)."""
    from policyengine.audit.migrate import upgrade

    try:
        before, after = upgrade(db)
    except AuditStoreError as exc:
        raise _fail(exc) from None
    except Exception as exc:  # alembic/driver errors: say which database and what to check
        err.print(f"error: migrating {display_url(resolve_url(db))} failed: {exc}", highlight=False)
        raise typer.Exit(2) from None
    where = display_url(resolve_url(db))
    if before == after:
        out.print(f"{where}: already at {after}", highlight=False)
    else:
        out.print(f"{where}: migrated {before or '(empty)'} -> {after}", highlight=False)


@app.command("verify")
def verify_cmd(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Walk every chain; report the first edited, deleted, inserted or reordered row. Exit 1 on tampering."""
    from policyengine.audit.verify import total_rows, verify

    try:
        engine = _engine(db)
        with _progress(total_rows(engine), "verifying") as progress:
            report = verify(engine, progress)
    except AuditStoreError as exc:
        raise _fail(exc) from None
    except SQLAlchemyError as exc:
        raise _database_error(db, exc) from None
    for head in report.chains:
        state = "ok" if head.verified else "BROKEN"
        out.print(
            f"chain {head.chain_id}: {head.rows} rows, seq {head.first_seq}..{head.last_seq}, "
            f"head {head.head_hash} {state}",
            highlight=False,
        )
    for finding in report.findings:
        err.print(f"TAMPERED: {finding}", highlight=False, soft_wrap=True)
    summary = f"{report.rows} rows in {len(report.chains)} chains"
    if report.ok:
        out.print(f"verified: {summary}", highlight=False)
        return
    err.print(f"verify failed: {len(report.findings)} chain(s) broken; {summary}", highlight=False)
    raise typer.Exit(1)


@app.command("export")
def export_cmd(
    fmt: str = typer.Option(
        ..., "--output", "-o", "--format", "-f", help="Format: csv | jsonl | html | pdf | policyreport | openreports"
    ),
    out_file: Path = typer.Option(..., "--out", help="File to write; the manifest goes beside it."),
    since: str | None = typer.Option(None, help="From this UTC date/time (inclusive), e.g. 2025-03-01."),
    until: str | None = typer.Option(None, help="Up to this UTC date/time (exclusive)."),
    regime: str | None = typer.Option(None, help="Only decisions under this regime (GDPR, PIPL, CCPA...)."),
    decision: str | None = typer.Option(None, help="allow | deny | rewrite"),
    cluster: str | None = typer.Option(None, help="Only decisions taken in this cluster."),
    namespace: str | None = typer.Option(None, help="Only objects in this namespace."),
    verify_chains: bool | None = typer.Option(
        None, "--verify/--no-verify", help="Verify the chains and say so in the manifest (html/pdf: always)."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export the trail (filtered) as CSV, JSONL, an HTML or PDF report, or PolicyReport YAML."""
    from policyengine.audit.export import export
    from policyengine.audit.query import ExportFilter, count_rows, parse_when

    try:
        flt = ExportFilter(
            since=parse_when(since, option="--since") if since else None,
            until=parse_when(until, option="--until") if until else None,
            regime=regime,
            decision=decision,
            cluster=cluster,
            namespace=namespace,
        )
        engine = _engine(db)
        total = count_rows(engine, flt) if fmt in ("csv", "jsonl", "policyreport", "openreports") else 0
        with _progress(total, f"exporting {fmt}") as progress:
            result = export(engine, fmt, out_file, flt, verify_chains=verify_chains, progress=progress)
    except AuditStoreError as exc:
        raise _fail(exc) from None
    except SQLAlchemyError as exc:
        raise _database_error(db, exc) from None
    note = ""
    if result.verification is not None:
        note = "; chains verify" if result.verification.ok else "; WARNING: chains do NOT verify"
    out.print(f"wrote {result.path} ({result.rows} rows{note}); manifest {result.manifest}", highlight=False)
    if result.verification is not None and not result.verification.ok:
        raise typer.Exit(1)


@app.command("prune")
def prune_cmd(
    before: str | None = typer.Option(None, help="Delete rows older than this UTC date (YYYY-MM-DD)."),
    retention_days: int | None = typer.Option(
        None, "--retention-days", help="Keep this many days (default $POLICYENGINE_AUDIT_RETENTION_DAYS)."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete old rows; a checkpoint per chain keeps what remains verifiable."""
    from policyengine.audit.prune import prune, retention_cutoff
    from policyengine.audit.query import parse_when

    try:
        cutoff: datetime | None
        cutoff = parse_when(before, option="--before") if before is not None else retention_cutoff(retention_days)
        if cutoff is None:
            raise AuditStoreError(
                "nothing to prune by: give --before DATE or --retention-days N "
                "(or set $POLICYENGINE_AUDIT_RETENTION_DAYS)"
            )
        engine = _engine(db)
        pruned = prune(engine, cutoff)
    except AuditStoreError as exc:
        raise _fail(exc) from None
    except SQLAlchemyError as exc:
        raise _database_error(db, exc) from None
    for item in pruned:
        out.print(f"chain {item.chain_id}: pruned {item.rows} rows through seq {item.through_seq}", highlight=False)
    out.print(f"pruned {sum(p.rows for p in pruned)} rows before {cutoff.isoformat()}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
