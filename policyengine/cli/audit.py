"""`policyengine audit verify|anchor|export|prune|seal|keygen` and `policyengine db upgrade`.

Everything touching the database goes through `policyengine.audit.trail` (no SQL here); its errors
arrive as AuditStoreError, reported with exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from policyengine.audit.anchor import AnchorFileError
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.signing import SigningKey, SigningKeyError, VerifyKey
from policyengine.audit.store import display_url, resolve_url
from policyengine.audit.trail import AuditTrail, upgrade_database
from policyengine.audit.verify_report import VerifyReport

app = typer.Typer(help="Audit trail: verify, anchor, export, prune, keygen.", no_args_is_help=True)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)


@app.callback()
def audit_group() -> None:
    """Audit trail: verify, anchor, export, prune, keygen."""


@db_app.callback()
def db_group() -> None:
    """Audit database schema (Alembic migrations)."""


err = Console(stderr=True)
out = Console()
DB_HELP = "Audit database URL (default $POLICYENGINE_AUDIT_DB or sqlite:///./var/audit.db)."
PUBLIC_KEY_HELP = (
    "Public key (PEM) of the key the server signs with; a private key file works too. Repeat it for "
    "rotated keys. Without one, truncation, recomputed suffixes and deleted chains cannot be detected."
)
SIGNING_KEY_HELP = "The signing key (PEM), to sign the prune checkpoints of a signed trail."
PROGRESS_MIN_ROWS = 50_000
EXIT_TAMPERED = 1
EXIT_UNPROVEN = 3  # the chains verify, but without a public key truncation & co cannot be detected
CANNOT_WITHOUT_KEY = (
    "without the signing key's public key (--public-key) verify cannot detect rows removed from the end "
    "of a chain, a suffix rewritten with recomputed hashes, rows renumbered after a deletion, forged rows "
    "appended after a head, a deleted prefix behind a forged checkpoint, or a deleted chain"
)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _public_keys(paths: list[Path] | None) -> list[VerifyKey]:
    """The keys of --public-key (SigningKeyError says which file is not one)."""
    return [VerifyKey.load(path) for path in paths or []]


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
    try:
        before, after = upgrade_database(db)
    except AuditStoreError as exc:
        raise _fail(exc) from None
    where = display_url(resolve_url(db))
    if before == after:
        out.print(f"{where}: already at {after}", highlight=False)
    else:
        out.print(f"{where}: migrated {before or '(empty)'} -> {after}", highlight=False)


@app.command("verify")
def verify_cmd(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", envvar="POLICYENGINE_AUDIT_PUBLIC_KEY", help=PUBLIC_KEY_HELP
    ),
    against: list[Path] | None = typer.Option(
        None, "--against", help="An anchor (`audit anchor`) or export manifest whose heads must still hold."
    ),
    strict: bool = typer.Option(False, "--strict", help="Rows after a chain's newest signed head fail too."),
) -> None:
    """Walk every chain and check the signed registry: exit 0 when everything verifies, 1 on tampering,
    2 on bad input, 3 when the chains verify but no public key was given (so truncation, recomputed
    suffixes and deleted chains cannot be detected)."""
    try:
        keys = _public_keys(public_key)
        references = [AuditTrail.reference(path, keys) for path in against or []]
        with AuditTrail.open(db) as trail, _progress(trail.total_rows(), "verifying") as progress:
            report = trail.verify(progress, keys=keys, against=references, strict=strict)
    except (AuditStoreError, SigningKeyError, AnchorFileError) as exc:
        raise _fail(exc) from None
    _print_report(report)
    raise typer.Exit(_verdict(report, "verified"))


def _print_report(report: VerifyReport) -> None:
    for head in report.chains:
        state = "ok" if head.verified else "BROKEN"
        signed = ""
        if head.signed_seq is not None:
            closed = ", closed" if head.closed else ""
            tail = f"; {head.unsigned_rows} rows after it unsigned" if head.unsigned_rows else ""
            signed = f", signed through seq {head.signed_seq}{closed}{tail}"
        out.print(
            f"chain {head.chain_id}: {head.rows} rows, seq {head.first_seq}..{head.last_seq}, "
            f"head {head.head_hash} {state}{signed}",
            highlight=False,
            soft_wrap=True,
        )
    for note in report.notes:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)
    for finding in report.findings:
        err.print(f"TAMPERED: {finding}", highlight=False, soft_wrap=True)


def _verdict(report: VerifyReport, done: str) -> int:
    """Print the summary line; the exit code (0, EXIT_TAMPERED or EXIT_UNPROVEN)."""
    summary = f"{report.rows} rows in {len(report.chains)} chains"
    compared = f"; heads of {len(report.against)} anchor(s)/manifest(s) hold" if report.against else ""
    if not report.ok:
        err.print(f"verify failed: {len(report.findings)} finding(s); {summary}", highlight=False, soft_wrap=True)
        return EXIT_TAMPERED
    if report.signatures_checked:
        keys = ", ".join(report.registry_key_ids) or "no key"
        out.print(
            f"{done}: {summary}; {report.registry_entries} signed registry entries ({keys}){compared}",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    signed = (
        f"the registry holds {report.registry_entries} signed entries ({', '.join(report.registry_key_ids)}): "
        f"pass its public key with --public-key"
        if report.registry_entries
        else "the trail carries no signatures: start the server with --audit-signing-key"
    )
    out.print(f"hash chains verify: {summary}{compared}", highlight=False, soft_wrap=True)
    err.print(f"NOT PROVEN: {CANNOT_WITHOUT_KEY}; {signed}", highlight=False, soft_wrap=True)
    return EXIT_UNPROVEN


@app.command("anchor")
def anchor_cmd(
    out_file: Path = typer.Option(..., "--out", "-o", help="The anchor file to write (JSON)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", envvar="POLICYENGINE_AUDIT_PUBLIC_KEY", help=PUBLIC_KEY_HELP
    ),
) -> None:
    """Verify, then write every chain's head and signed head, and the registry's newest entry, for a
    witness outside the database (`verify --against FILE` checks them later). Exit codes as verify;
    nothing is written when verify finds tampering."""
    try:
        keys = _public_keys(public_key)
        with AuditTrail.open(db) as trail, _progress(trail.total_rows(), "verifying") as progress:
            report = trail.anchor(out_file, keys=keys, progress=progress)
    except (AuditStoreError, SigningKeyError) as exc:
        raise _fail(exc) from None
    _print_report(report)
    code = _verdict(report, "verified")
    if code != EXIT_TAMPERED:
        signed = sum(1 for head in report.chains if head.signed_seq)
        wrote = f"wrote {out_file}: {len(report.chains)} chain heads ({signed} signed)"
        out.print(wrote, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command("seal")
def seal_cmd(
    signing_key: Path = typer.Option(
        ..., "--signing-key", envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help="The signing key (PEM)."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", help="More public keys the registry's entries may be signed with (rotated keys)."
    ),
) -> None:
    """Sign the heads of chains no signed statement names yet (written before the key was configured, or
    by `check --audit` without it), after verifying everything else: you vouch for them as they are now."""
    try:
        key = SigningKey.load(signing_key)
        with AuditTrail.open(db) as trail:
            sealed = trail.seal_unsigned(key, keys=_public_keys(public_key))
    except (AuditStoreError, SigningKeyError) as exc:
        raise _fail(exc) from None
    for head in sealed:
        out.print(f"chain {head.chain_id}: signed as found, through seq {head.last_seq}", highlight=False)
    out.print(f"sealed {len(sealed)} chain(s) with {key.key_id}", highlight=False)


@app.command("keygen")
def keygen_cmd(
    out_dir: Path = typer.Option(..., "--out", help="Directory for audit.key (private, 0600) and audit.pub."),
    force: bool = typer.Option(False, "--force", help="Replace keys already there."),
) -> None:
    """Make an Ed25519 signing key for the audit trail: audit.key for the server, audit.pub for verify."""
    private, public = out_dir / "audit.key", out_dir / "audit.pub"
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing and not force:
        raise _fail(ValueError(f"{', '.join(existing)} already exist: pass --force to replace them"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        key = SigningKey.generate()
        key.save(private, public)
    except OSError as exc:
        raise _fail(ValueError(f"cannot write the keys to {out_dir}: {exc.strerror}")) from None
    wrote = f"wrote {private} (private, mode 0600) and {public}; key id {key.key_id}"
    out.print(wrote, highlight=False, soft_wrap=True)
    out.print(
        f"serve with --audit-signing-key {private} (Kubernetes: kubectl -n policyengine-system create secret "
        f"generic policyengine-audit-signing-key --from-file=audit.key={private}); "
        f"verify with --public-key {public}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("export")
def export_cmd(
    fmt: str = typer.Option(
        ..., "--output", "-o", "--format", "-f", help="Format: csv | jsonl | html | pdf | policyreport | openreports"
    ),
    out_file: Path = typer.Option(..., "--out", help="File to write; the manifest goes beside it."),
    since: str | None = typer.Option(None, help="From this UTC date/time (inclusive), e.g. 2025-03-01."),
    until: str | None = typer.Option(None, help="Up to this UTC date/time (exclusive)."),
    regime: str | None = typer.Option(None, help="Only decisions under this regime (GDPR, PIPL, CCPA; any case)."),
    decision: str | None = typer.Option(None, "--decision", "--outcome", help="allow | deny | rewrite"),
    cluster: str | None = typer.Option(None, help="Only decisions taken in this cluster."),
    namespace: str | None = typer.Option(None, help="Only objects in this namespace."),
    service: str | None = typer.Option(None, help="Only this service (namespace/name)."),
    verify_chains: bool | None = typer.Option(
        None, "--verify/--no-verify", help="Verify the chains and say so in the manifest (html/pdf: always)."
    ),
    policies: list[Path] | None = typer.Option(
        None, "--policy", "-p", help="html/pdf: policy repo(s) the rows' revisions name (default the bundled one)."
    ),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help="Sign the manifest with this key (PEM)."
    ),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", envvar="POLICYENGINE_AUDIT_PUBLIC_KEY", help="html/pdf: check the signed heads."
    ),
    report_api: str | None = typer.Option(
        None,
        "--report-api",
        help="policyreport: wgpolicyk8s.io/v1alpha2 PolicyReports (default) | openreports: openreports.io/v1alpha1",
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export the trail (filtered) as CSV, JSONL, the evidence report (HTML or PDF), or PolicyReport YAML
    (the latest result per resource and rule in the period, one report per namespace, each under 1 MiB)."""
    from policyengine.cli.audit_report import build_filter, write_report_file

    try:
        flt = build_filter(since, until, regime, decision, cluster, namespace, service)
        trail = AuditTrail.open(db)
        if fmt in ("html", "pdf"):
            written = write_report_file(
                trail, fmt, out_file, flt, policies=policies, signing_key=signing_key, public_key=public_key
            )
            verification, path, rows, manifest = written.verification, written.path, written.rows, written.manifest
        else:
            from policyengine.resources import default_policies

            flt = trail.checked_filter(flt, *_policy_names(policies or [default_policies()]))
            key = SigningKey.load(signing_key) if signing_key else None
            total = trail.count_rows(flt) if fmt in ("csv", "jsonl", "policyreport", "openreports") else 0
            with _progress(total, f"exporting {fmt}") as progress:
                result = trail.export(
                    fmt,
                    out_file,
                    flt,
                    verify_chains=verify_chains,
                    progress=progress,
                    reports=report_api,
                    signing_key=key,
                )
            verification, path, rows, manifest = result.verification, result.path, result.rows, result.manifest
    except (AuditStoreError, SigningKeyError) as exc:
        raise _fail(exc) from None
    note = ""
    if verification is not None:
        note = "; chains verify" if verification.ok else "; WARNING: chains do NOT verify"
    out.print(f"wrote {path} ({rows} rows{note}); manifest {manifest}", highlight=False, soft_wrap=True)
    if verification is not None and not verification.ok:
        raise typer.Exit(1)


def _policy_names(paths: list[Path]) -> tuple[set[str], set[str]]:
    """The regimes and clusters the policy repos name (what a filter may ask for besides the trail's)."""
    from policyengine.cli.common import open_policy

    regimes: set[str] = set()
    clusters: set[str] = set()
    for path in paths:
        policy = open_policy(path)
        regimes.update(str(r) for r in policy.data.get("regimes") or {})
        clusters.update(policy.cluster_names())
    return regimes, clusters


@app.command("prune")
def prune_cmd(
    before: str | None = typer.Option(None, help="Delete rows older than this UTC date (YYYY-MM-DD)."),
    retention_days: int | None = typer.Option(
        None, "--retention-days", help="Keep this many days (default $POLICYENGINE_AUDIT_RETENTION_DAYS)."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help=SIGNING_KEY_HELP
    ),
    public_key: list[Path] | None = typer.Option(
        None, "--public-key", help="More public keys the registry's entries may be signed with (rotated keys)."
    ),
) -> None:
    """Delete old rows; a checkpoint per chain keeps what remains verifiable. A signed trail is verified
    first, pruned no further than its signed heads, and its checkpoints are signed (--signing-key)."""
    from policyengine.audit.prune import retention_cutoff
    from policyengine.audit.query import parse_when

    try:
        cutoff: datetime | None
        cutoff = parse_when(before, option="--before") if before is not None else retention_cutoff(retention_days)
        if cutoff is None:
            raise AuditStoreError(
                "nothing to prune by: give --before DATE or --retention-days N "
                "(or set $POLICYENGINE_AUDIT_RETENTION_DAYS)"
            )
        key = SigningKey.load(signing_key) if signing_key is not None else None
        keys = _public_keys(public_key)
        with AuditTrail.open(db) as trail:
            pruned = trail.prune(cutoff, key=key, keys=keys)
    except (AuditStoreError, SigningKeyError) as exc:
        raise _fail(exc) from None
    for item in pruned:
        out.print(f"chain {item.chain_id}: pruned {item.rows} rows through seq {item.through_seq}", highlight=False)
    out.print(f"pruned {sum(p.rows for p in pruned)} rows before {cutoff.isoformat()}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
