"""`policyengine audit transfers|verify-report` and the report behind `audit export -o html|pdf`.

The report and the transfer record are built from aggregates (`policyengine.evidence`), bases re-derived
from the policy repos given with `--policy` (the bundled one by default), and written with a manifest
signed by `--signing-key` when given. Unknown filter values exit 2 listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.export.manifest import ManifestError, check_manifest
from policyengine.audit.query import ExportFilter, parse_when
from policyengine.audit.signing import SigningKey, SigningKeyError, VerifyKey
from policyengine.audit.trail import AuditTrail
from policyengine.cli.audit import DB_HELP, PUBLIC_KEY_HELP, _fail, _progress, app, err, out
from policyengine.cli.common import open_policy
from policyengine.evidence.basis import PolicyBook
from policyengine.evidence.report import Report
from policyengine.evidence.run import Written, collect_report, report_bytes, transfers_bytes, write_evidence
from policyengine.evidence.transfers import DEFAULT_EXPIRING_DAYS

POLICY_HELP = "Policy repo the rows' revision was decided under (repeat for several; default the bundled one)."
SIGNING_HELP = "The audit signing key (PEM): signs the manifest written beside the file."


def build_filter(
    since: str | None,
    until: str | None,
    regime: str | None,
    decision: str | None,
    cluster: str | None,
    namespace: str | None = None,
    service: str | None = None,
) -> ExportFilter:
    return ExportFilter(
        since=parse_when(since, option="--since") if since else None,
        until=parse_when(until, option="--until") if until else None,
        regime=regime,
        decision=decision,
        cluster=cluster,
        namespace=namespace,
        service=service,
    )


def policy_book(paths: list[Path] | None) -> PolicyBook:
    return PolicyBook([open_policy(path) for path in paths] if paths else [open_policy(None)])


@contextmanager
def stages(label: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner naming the current stage on stderr when it is a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn(label + ": {task.description}"), BarColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda stage: bar.update(task, description=stage)


def make_report(
    trail: AuditTrail,
    flt: ExportFilter,
    book: PolicyBook,
    *,
    keys: list[VerifyKey],
    expiring_within: int = DEFAULT_EXPIRING_DAYS,
    today: date | None = None,
) -> Report:
    with _progress(trail.total_rows(), "verifying") as progress, stages("report") as step:
        return collect_report(
            trail,
            flt,
            book,
            keys=keys,
            today=today,
            expiring_within=expiring_within,
            step=step,
            verify_progress=progress,
        )


def write_report_file(
    trail: AuditTrail,
    fmt: str,
    out_file: Path,
    flt: ExportFilter,
    *,
    policies: list[Path] | None,
    signing_key: Path | None,
    public_key: list[Path] | None,
) -> Written:
    """`audit export -o html|pdf`: the evidence report and its manifest."""
    key = SigningKey.load(signing_key) if signing_key else None
    keys = [VerifyKey.load(p) for p in public_key or []] + ([key.public] if key else [])
    book = policy_book(policies)
    flt = trail.checked_filter(flt, book.regimes(), book.clusters())
    report = make_report(trail, flt, book, keys=keys)
    with stages("report") as step:
        if step:
            step(f"rendering {fmt}")
        data = report_bytes(report, fmt)
    return write_evidence(
        trail, report, data, fmt, out_file, flt, generator="policyengine audit export", signing_key=key
    )


@app.command("transfers")
def transfers_cmd(
    fmt: str = typer.Option("html", "--output", "-o", "--format", help="html | pdf | csv | json"),
    out_file: Path = typer.Option(..., "--out", help="File to write; the manifest goes beside it."),
    since: str | None = typer.Option(None, help="From this UTC date/time (inclusive)."),
    until: str | None = typer.Option(None, help="Up to this UTC date/time (exclusive)."),
    regime: str | None = typer.Option(None, help="Only decisions under this regime (any case)."),
    cluster: str | None = typer.Option(None, help="Only decisions taken in this cluster."),
    service: str | None = typer.Option(None, help="Only this service (namespace/name)."),
    expiring_within: int = typer.Option(
        DEFAULT_EXPIRING_DAYS, "--expiring-within", min=0, help="List mechanisms expiring within DAYS."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="Count days to expiry from this date (default today)."),
    policies: list[Path] | None = typer.Option(None, "--policy", "-p", help=POLICY_HELP),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help=SIGNING_HELP
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """The transfer record: per service, its data, every destination country and cluster in the period,
    the basis (home, adequacy, mechanism with id and expiry) and counts allowed/rewritten/refused."""
    if fmt not in ("html", "pdf", "csv", "json"):
        raise _fail(ValueError(f"--output {fmt!r} is not one of html, pdf, csv, json"))
    try:
        key = SigningKey.load(signing_key) if signing_key else None
        flt = build_filter(since, until, regime, None, cluster, service=service)
        today = parse_when(as_of, option="--as-of").date() if as_of else None
        book = policy_book(policies)
        with AuditTrail.open(db) as trail:
            flt = trail.checked_filter(flt, book.regimes(), book.clusters())
            with stages("transfers") as step:
                report = collect_report(
                    trail, flt, book, verify_chains=False, today=today, expiring_within=expiring_within, step=step
                )
            data = transfers_bytes(report, fmt)
            written = write_evidence(
                trail, report, data, fmt, out_file, flt, generator="policyengine audit transfers", signing_key=key
            )
    except (AuditStoreError, SigningKeyError) as exc:
        raise _fail(exc) from None
    record = report.transfers
    pairs = sum(len(s.destinations) for s in record.services.values())
    out.print(
        f"wrote {written.path} ({len(record.services)} services, {pairs} destinations, {written.rows} decisions; "
        f"{len(record.expiring)} mechanism(s) expiring within {expiring_within} days, "
        f"{len(record.expired_in_use)} expired while in use); manifest {written.manifest}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("verify-report")
def verify_report_cmd(
    file: Path = typer.Argument(..., help="A report or export (or its .manifest.json)."),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", envvar="POLICYENGINE_AUDIT_PUBLIC_KEY", help=PUBLIC_KEY_HELP
    ),
) -> None:
    """Check a report or export against its manifest: its SHA-256, and with --public-key the manifest's
    signature. Exit 0 when it holds, 1 when the file or manifest was modified, 2 on bad input."""
    try:
        keys = [VerifyKey.load(p) for p in public_key or []]
        found = check_manifest(file, keys)
    except (ManifestError, SigningKeyError) as exc:
        raise _fail(exc) from None
    for problem in found.problems:
        err.print(f"MODIFIED: {problem}", highlight=False, soft_wrap=True)
    if not found.ok:
        raise typer.Exit(1)
    summary = f"{file}: matches {found.manifest.name} ({found.rows} rows, {found.chain_heads} chain heads)"
    if found.signature_checked:
        out.print(f"{summary}; signature by {found.key_id} verifies", highlight=False, soft_wrap=True)
    elif found.key_id:
        out.print(
            f"{summary}; signed by {found.key_id}: pass --public-key to check it", highlight=False, soft_wrap=True
        )
    else:
        out.print(f"{summary}; the manifest is not signed (export with --signing-key)", highlight=False, soft_wrap=True)


@app.command("serve")
def serve_cmd(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    policies: list[Path] | None = typer.Option(None, "--policy", "-p", help=POLICY_HELP),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8444, help="HTTPS port."),
    tls_cert: Path | None = typer.Option(None, help="Server certificate (PEM); reloaded on change."),
    tls_key: Path | None = typer.Option(None, help="Its private key (PEM)."),
    dev_certs: bool = typer.Option(False, "--dev-certs", help="Make a local CA and a certificate for localhost."),
    dev_certs_dir: Path = typer.Option(Path("var/tls"), help="Where --dev-certs writes ca.crt, tls.crt, tls.key."),
    tls_min_version: str = typer.Option("1.2", help="Lowest TLS version: 1.2 (AEAD suites only) or 1.3."),
    admin_token_file: Path | None = typer.Option(None, help="File holding the admin token (the page's login)."),
    admin_client_ca: Path | None = typer.Option(None, help="CA of admin client certificates accepted."),
    audit_signing_key: Path | None = typer.Option(
        None, envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help="The audit signing key: integrity checks its signatures."
    ),
    cert_check_seconds: float = typer.Option(5.0, help="How often to look for rotated TLS files."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the read-only audit page (/audit) on its own over HTTPS, behind the admin token or an admin
    client certificate: filter decisions, open one with its explanation, chain integrity, downloads."""
    import os

    from pydantic import ValidationError

    from policyengine.api.access import load_ca_file
    from policyengine.api.server import run
    from policyengine.api.settings import Settings
    from policyengine.api.tls import check_pair, make_dev_certificates
    from policyengine.audit.store import check_audit_store, resolve_url

    if dev_certs:
        certs = make_dev_certificates(dev_certs_dir)
        tls_cert, tls_key = certs.cert, certs.key
        err.print(f"development certificates in {dev_certs_dir} (trust {certs.ca_cert})", highlight=False)
    if tls_cert is None or tls_key is None:
        raise _fail(ValueError("HTTPS only: pass --tls-cert and --tls-key, or --dev-certs for local use"))
    problem = check_pair(tls_cert, tls_key)
    if problem:
        raise _fail(ValueError(problem))
    admin_token = os.environ.get("POLICYENGINE_ADMIN_TOKEN")
    if admin_token_file is not None:
        try:
            admin_token = admin_token_file.read_text().strip()
        except OSError as exc:
            raise _fail(ValueError(f"--admin-token-file {admin_token_file}: {exc.strerror}")) from None
    if not admin_token and admin_client_ca is None:
        raise _fail(ValueError("the audit page needs --admin-token-file or --admin-client-ca (it is never open)"))
    if admin_client_ca is not None:
        try:
            load_ca_file(admin_client_ca)
        except ValueError as exc:
            raise _fail(ValueError(f"--admin-client-ca {exc}")) from None
    paths = [p.resolve() for p in policies or []]
    for path in paths:
        open_policy(path)  # exits 2 listing the problems of a repo that does not load
    url = resolve_url(db)
    try:
        check_audit_store(url)
        settings = Settings(
            cluster="audit-page",
            audit_url=url,
            audit_page_policies=tuple(paths),
            audit_signing_key=audit_signing_key,
            admin_token=admin_token or None,
            admin_client_ca=admin_client_ca,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_min_version=tls_min_version,
            cert_check_seconds=cert_check_seconds,
            log_level=log_level,
        )
    except AuditStoreError as exc:
        raise _fail(exc) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(ValueError(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}")) from None
    err.print(f"audit page on https://{host}:{port}/audit (trail {trail_name(url)})", highlight=False)
    run(settings, factory="policyengine.api.audit_page:audit_app_from_environment")


def trail_name(url: str) -> str:
    from policyengine.audit.store import display_url

    return display_url(url)


def register() -> None:
    """The commands above are added to `audit.app` when this module is imported; main calls this so the
    import is explicit."""
