"""`policyengine check PATH...`: offline evaluation of manifests, like `conftest test`.

Reads YAML/JSON files and directories (multi-document too), decides every object that creates a
cross-cluster route as if it were admitted in `--cluster`, and prints the results as text, JSON, SARIF
or JUnit. Exit 0 when nothing is denied, 1 when something enforced as `deny` is violated, 2 on bad
input or usage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.shape import ManifestError
from policyengine.admission.manifests import read_manifests
from policyengine.audit import AuditRecord, AuditStoreError
from policyengine.audit.cli_decisions import record_cli_decisions
from policyengine.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VIOLATION,
    EngineOption,
    OpaTokenOption,
    OpaUrlOption,
    PoliciesOption,
    console,
    err_console,
    fail,
    open_engine,
    open_policy,
    parse_time,
)
from policyengine.cli.formats import (
    FORMATS,
    CheckResult,
    render_json,
    render_junit,
    render_sarif,
    render_text,
)
from policyengine.decide import Decider
from policyengine.engine import EngineError


def check_command(
    paths: Annotated[list[Path], typer.Argument(help="Manifest files or directories (YAML or JSON).")],
    cluster: Annotated[str, typer.Option("--cluster", help="The cluster the manifests are applied to.")],
    output: Annotated[str, typer.Option("--format", "-o", help="text | json | sarif | junit.")] = "text",
    audit: Annotated[
        bool, typer.Option("--audit", help="Record every decision in the audit trail (source cli).")
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", envvar="POLICYENGINE_AUDIT_DB", help="Audit database URL for --audit.")
    ] = None,
    at: Annotated[str | None, typer.Option("--time", help="Decide as of this time (ISO 8601).")] = None,
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
) -> None:
    """Decide every cross-cluster route the manifests create, as the admission webhook would."""
    if output not in FORMATS:
        fail(f"--format {output!r}: choose one of {', '.join(FORMATS)}")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or directory: {', '.join(missing)}")
    policy = open_policy(policies)
    if policy.cluster_info(cluster) is None:
        fail(f"--cluster {cluster!r} is not a cluster of the policy repo (known: {', '.join(policy.cluster_names())})")
    manifests = read_manifests(paths)
    if manifests.problems:
        for problem in manifests.problems:
            err_console.print(f"[red]{problem}[/]", soft_wrap=True)
        fail(f"{len(manifests.problems)} manifest problem(s); fix them and retry")
    try:
        decider = Decider(policy, open_engine(engine, opa_url, opa_token))
    except EngineError as exc:
        fail(f"cannot load the policy into the {engine} engine: {exc}")
    context = EvaluationContext(manifests=manifests.bodies, now=parse_time(at))
    results: list[CheckResult] = []
    records: list[AuditRecord] = []
    for doc in manifests.documents:
        if not extractors_for(doc.body):
            continue
        try:
            decision = evaluate_manifest(doc.body, decider, cluster, context)
        except ManifestError as exc:
            fail(f"{doc.location}: {exc}")
        metadata = doc.body.get("metadata") or {}
        results.append(
            CheckResult(
                file=str(doc.file),
                api_version=str(doc.body.get("apiVersion", "")),
                kind=str(doc.body.get("kind", "")),
                namespace=str(metadata.get("namespace") or ""),
                name=str(metadata.get("name") or ""),
                decision=decision,
                line=doc.line,
            )
        )
        records.append(AuditRecord.for_manifest(decision, doc.body, source="cli", cluster=cluster, user=_user()))
    if audit:
        try:
            recorded = record_cli_decisions(db, records)
        except AuditStoreError as exc:
            fail(f"cannot record the decisions in the audit trail: {exc}")
        err_console.print(f"recorded {recorded} decision(s) in the audit trail")
    if output == "json":
        print(render_json(results, policy.revision))
    elif output == "sarif":
        print(render_sarif(results, policy.revision))
    elif output == "junit":
        print(render_junit(results, policy.revision))
    else:
        render_text(results, policy.revision, console)
    raise typer.Exit(EXIT_VIOLATION if any(r.decision.enforced for r in results) else EXIT_OK)


def _user() -> str:
    """Who ran the check, for the audit row (login name only; no other personal data)."""
    return os.environ.get("USER") or os.environ.get("LOGNAME") or ""


__all__ = ["EXIT_USAGE", "check_command"]
