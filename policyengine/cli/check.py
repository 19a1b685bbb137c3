"""`policyengine check PATH...|-`: offline evaluation of manifests, like `conftest test`.

Reads YAML/JSON files, directories (multi-document too; kustomizations rendered with `kubectl
kustomize`) and stdin (`-`, e.g. `helm template ... | policyengine check - ...`), decides every object
of a kind that can create a cross-cluster route as if it were admitted in `--cluster` (objects without
a namespace in `--namespace`, as `kubectl apply -n`) with what the manifests show of the cluster
(Namespace labels, ServiceImport `status.clusters`, EndpointSlices of other clusters:
`observations_from_manifests`), and prints the results as text, JSON, SARIF or
JUnit. Files that hold no Kubernetes objects are skipped with a note (`--strict`: an error). Exit 0 when
nothing decided is denied, 1 when something enforced as `deny` is violated, 2 on bad input or usage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.shape import ManifestError
from policyengine.admission.manifests import STDIN, ManifestDocument, ManifestProblem, ManifestSet, read_manifests
from policyengine.admission.observations import observations_from_manifests
from policyengine.audit import AuditRecord, AuditStoreError
from policyengine.audit.cli_decisions import record_cli_decisions
from policyengine.audit.signing import SigningKey, SigningKeyError
from policyengine.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VIOLATION,
    EngineOption,
    NamespaceOption,
    OpaTokenOption,
    OpaUrlOption,
    OutputOption,
    PoliciesOption,
    StrictOption,
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
    CheckSummary,
    render_json,
    render_junit,
    render_sarif,
    render_text,
)
from policyengine.decide import Decider
from policyengine.engine import EngineError

DEFAULT_NAMESPACE = "default"


def _placed(doc: ManifestDocument, namespace: str | None) -> tuple[ManifestDocument, str, str] | ManifestProblem:
    """The document as applied with `-n namespace`: (document, namespace decided in, where it came from).

    An object without a namespace gets `--namespace` (else `default`, said so); an object whose own
    namespace differs from `--namespace` is refused, as `kubectl apply -n` refuses it.
    """
    metadata = doc.body.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    own = metadata.get("namespace")
    if isinstance(own, str) and own:
        if namespace is not None and own != namespace:
            return ManifestProblem(
                doc.file,
                f"{doc.body.get('kind')} {metadata.get('name')}: its namespace {own!r} does not match "
                f"--namespace {namespace!r} (as kubectl apply -n refuses it; drop -n or fix the namespace)",
                doc.line,
                doc.index,
            )
        return doc, own, "object"
    chosen, source = (namespace, "--namespace") if namespace is not None else (DEFAULT_NAMESPACE, "default")
    body: dict[str, Any] = {**doc.body, "metadata": {**metadata, "namespace": chosen}}
    return ManifestDocument(doc.file, doc.index, doc.line, body, doc.rendered), chosen, source


def require_paths(paths: list[Path]) -> None:
    """Exit 2 unless every path exists and stdin (-) is given at most once."""
    missing = [str(p) for p in paths if p != STDIN and not p.exists()]
    if missing:
        fail(f"no such file or directory: {', '.join(missing)}")
    if sum(1 for p in paths if p == STDIN) > 1:
        fail("- (stdin) can be given once")


def placed_documents(
    paths: list[Path], namespace: str | None, strict: bool
) -> tuple[list[tuple[ManifestDocument, str, str]], ManifestSet]:
    """The documents of `paths` as applied with `-n namespace` (see `_placed`), and what was read.

    Skipped files are noted on stderr (errors with `strict`); missing paths and manifest problems exit 2."""
    require_paths(paths)
    manifests = read_manifests(paths)
    placed: list[tuple[ManifestDocument, str, str]] = []
    problems = list(manifests.problems)
    for doc in manifests.documents:
        result = _placed(doc, namespace)
        if isinstance(result, ManifestProblem):
            problems.append(result)
        else:
            placed.append(result)
    for skipped in manifests.skipped:
        if strict:
            problems.append(ManifestProblem(skipped.file, f"{skipped.reason} (--strict)"))
        else:
            err_console.print(f"note: {skipped}", soft_wrap=True, markup=False)
    if problems:
        for problem in problems:
            err_console.print(f"[red]{problem}[/]", soft_wrap=True)
        fail(f"{len(problems)} manifest problem(s); fix them and retry")
    return placed, manifests


def check_command(
    paths: Annotated[list[Path], typer.Argument(help="Manifest files or directories (YAML or JSON); - reads stdin.")],
    cluster: Annotated[str, typer.Option("--cluster", help="The cluster the manifests are applied to.")],
    output: OutputOption = "text",
    namespace: NamespaceOption = None,
    strict: StrictOption = False,
    audit: Annotated[
        bool, typer.Option("--audit", help="Record every decision in the audit trail (source cli).")
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", envvar="POLICYENGINE_AUDIT_DB", help="Audit database URL for --audit.")
    ] = None,
    audit_signing_key: Annotated[
        Path | None,
        typer.Option(envvar="POLICYENGINE_AUDIT_SIGNING_KEY", help="Sign the --audit rows' chain head with this key."),
    ] = None,
    at: Annotated[str | None, typer.Option("--time", help="Decide as of this time (ISO 8601).")] = None,
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
) -> None:
    """Decide every cross-cluster route the manifests create, as the admission webhook would."""
    if output not in FORMATS:
        fail(f"--output {output!r}: choose one of {', '.join(FORMATS)}")
    require_paths(paths)
    policy = open_policy(policies)
    if policy.cluster_info(cluster) is None:
        fail(f"--cluster {cluster!r} is not a cluster of the policy repo (known: {', '.join(policy.cluster_names())})")
    placed, manifests = placed_documents(paths, namespace, strict)
    try:
        decider = Decider(policy, open_engine(engine, opa_url, opa_token))
    except EngineError as exc:
        fail(f"cannot load the policy into the {engine} engine: {exc}")
    bodies = [doc.body for doc, _, _ in placed]
    observed = observations_from_manifests(bodies, cluster=cluster, cluster_by_fsm_key=policy.cluster_by_fsm_key)
    context = EvaluationContext(manifests=bodies, now=parse_time(at), observations=observed)
    results: list[CheckResult] = []
    records: list[AuditRecord] = []
    for doc, decided_in, namespace_from in placed:
        if not extractors_for(doc.body):
            continue
        try:
            decision = evaluate_manifest(doc.body, decider, cluster, context)
        except ManifestError as exc:
            fail(f"{doc.location}: {exc}")
        metadata = doc.body.get("metadata") or {}
        results.append(
            CheckResult(
                file=doc.display,
                api_version=str(doc.body.get("apiVersion", "")),
                kind=str(doc.body.get("kind", "")),
                namespace=decided_in,
                name=str(metadata.get("name") or ""),
                decision=decision,
                line=doc.line,
                namespace_from=namespace_from,
            )
        )
        records.append(AuditRecord.for_manifest(decision, doc.body, source="cli", cluster=cluster, user=_user()))
    if audit:
        try:
            key = SigningKey.load(audit_signing_key) if audit_signing_key is not None else None
            recorded = record_cli_decisions(db, records, signing_key=key)
        except SigningKeyError as exc:
            fail(f"--audit-signing-key: {exc}")
        except AuditStoreError as exc:
            fail(f"cannot record the decisions in the audit trail: {exc}")
        err_console.print(f"recorded {recorded} decision(s) in the audit trail")
    summary = CheckSummary(read=len(placed), skipped=tuple(str(s) for s in manifests.skipped))
    if output == "json":
        print(render_json(results, policy.revision, summary))
    elif output == "sarif":
        print(render_sarif(results, policy.revision))
    elif output == "junit":
        print(render_junit(results, policy.revision))
    else:
        render_text(results, policy.revision, console, summary)
    raise typer.Exit(EXIT_VIOLATION if any(r.decision.enforced for r in results) else EXIT_OK)


def _user() -> str:
    """Who ran the check, for the audit row (login name only; no other personal data)."""
    return os.environ.get("USER") or os.environ.get("LOGNAME") or ""


__all__ = ["EXIT_USAGE", "check_command"]
