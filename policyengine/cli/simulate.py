"""`policyengine simulate`: decide manifests under the current policy and a candidate; print what flips.

The objects are read as `check` reads them (files, directories, kustomizations, `-`), each group
applied to a cluster: `CLUSTER=PATH` names the cluster of that path, a plain `PATH` is applied to
`--cluster`; `--context C` (repeatable) adds the live objects of a kubeconfig context, decided as the
cluster clusters.yaml maps it to (`policyengine scan` lists the same objects). The candidate is any
combination of a policy directory (`--candidate-policies`), a
cluster added (`--add-cluster NAME --region R --entity E`) or removed (`--remove-cluster NAME`), and a
time (`--time`: the "after" is decided at that moment, e.g. when a mechanism expires; `--now` fixes
the "before" moment, default now). Only objects whose outcome or routes differ are printed, before ->
after, with the violation that makes the difference. Exit 1 when an object that was admitted
(allowed or rewritten) would be refused, 0 otherwise, 2 on bad input.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.shape import ManifestError
from policyengine.admission.manifests import STDIN
from policyengine.admission.observations import observations_from_manifests
from policyengine.cli.check import placed_documents
from policyengine.cli.common import DEFAULT_POLICIES as BUNDLED
from policyengine.cli.common import (
    EXIT_OK,
    EXIT_VIOLATION,
    EngineOption,
    NamespaceOption,
    OpaTokenOption,
    OpaUrlOption,
    OutputOption,
    PoliciesOption,
    StrictOption,
    console,
    fail,
    open_engine,
    open_policy,
    parse_time,
)
from policyengine.cli.formats import FORMATS, CheckResult, render_junit, render_sarif
from policyengine.cli.live import ContextsOption, KubeconfigOption, live_cluster_objects
from policyengine.decide import Decider, rfc3339
from policyengine.decision import Decision, Violation
from policyengine.engine import EngineError
from policyengine.policy import LoadedPolicy
from policyengine.simulate import CandidateError, ClusterObjects, Flip, NewCluster, Scenario, candidate_repo, simulate


def _targets(targets: Sequence[str], cluster: str | None) -> dict[str, list[Path]]:
    """Paths grouped by the cluster they are applied to (input order kept)."""
    groups: dict[str, list[Path]] = {}
    for target in targets:
        name, sep, rest = target.partition("=")
        if sep and name and not Path(target).exists():
            groups.setdefault(name, []).append(Path(rest))
            continue
        if cluster is None:
            fail(f"{target}: give the cluster it is applied to, as CLUSTER={target} or with --cluster")
        groups.setdefault(cluster, []).append(Path(target))
    if not groups:
        fail("give the manifests to decide: PATH (with --cluster) or CLUSTER=PATH, one or more")
    stdin = sum(1 for paths in groups.values() for p in paths if p == STDIN)
    if stdin > 1:
        fail("- (stdin) can be given once")
    return groups


def _describe_candidate(
    candidate: Path | None, add: NewCluster | None, remove: Sequence[str], at: datetime | None
) -> str:
    parts = []
    if candidate is not None:
        parts.append(f"policies {candidate}")
    if add is not None:
        parts.append(f"+cluster {add.name} ({add.region}, {add.entity})")
    parts.extend(f"-cluster {name}" for name in remove)
    if at is not None:
        parts.append(f"at {rfc3339(at)}")
    return "; ".join(parts)


def _decisions(d: Decision) -> dict[str, Any]:
    return {
        "decision": d.outcome.value,
        "enforcement": d.enforcement.value,
        "enforced": d.enforced,
        "regimes": list(d.regimes),
        "permitted_clusters": list(d.permitted_clusters),
        "violations": [v.to_dict() for v in d.violations],
    }


def _label(flip: Flip) -> tuple[str, str]:
    if flip.newly_denied:
        return "DENIED", "red"
    if flip.newly_allowed:
        return "ALLOWED", "green"
    return "CHANGED", "yellow"


def flip_json(flip: Flip) -> dict[str, Any]:
    meta = flip.manifest.get("metadata") or {}
    return {
        "cluster": flip.cluster,
        "source": flip.source,
        "resource": {
            "apiVersion": str(flip.manifest.get("apiVersion", "")),
            "kind": str(flip.manifest.get("kind", "")),
            "namespace": str(meta.get("namespace") or ""),
            "name": str(meta.get("name") or ""),
        },
        "change": _label(flip)[0].lower(),
        "newly_denied": flip.newly_denied,
        "before": _decisions(flip.before),
        "after": _decisions(flip.after),
        "because": [v.to_dict() for v in flip.violations],
        "routes": [
            {
                "service": r.service,
                "source": r.source,
                "destination": r.destination,
                "via": r.via,
                "before": r.before or None,
                "after": r.after or None,
                "because": [v.to_dict() for v in r.violations],
            }
            for r in flip.routes
        ],
    }


def _state(decision: Decision) -> str:
    text = decision.outcome.value
    if decision.violations and not decision.enforced and decision.outcome.value == "deny":
        text += f" ({decision.enforcement.value} only)"
    return text


def _print_violation(v: Violation) -> None:
    console.print(f"           [bold]{v.regime} {v.rule}[/] ({v.article}): {v.message}", soft_wrap=True)
    if v.remedy:
        console.print(f"             [italic]remedy:[/] {v.remedy}", soft_wrap=True)


def render_flips_text(flips: Sequence[Flip], decided: int, clusters: int, before: str, after: str) -> None:
    console.print(f"before: {before}\nafter:  {after}\n", soft_wrap=True)
    for flip in flips:
        label, style = _label(flip)
        console.print(
            f"[bold {style}]{label:<8}[/] {flip.source}  {flip.resource} in {flip.cluster}: "
            f"{_state(flip.before)} → {_state(flip.after)}",
            soft_wrap=True,
        )
        shown: set[tuple[str, str, str]] = set()
        for r in flip.routes:
            console.print(
                f"         route {r.service} {r.source} → {r.destination}: "
                f"{r.before or '(none)'} → {r.after or '(none)'}",
                soft_wrap=True,
            )
            for v in r.violations:
                shown.add((v.regime, v.rule, v.cluster))
                _print_violation(v)
        for v in flip.violations:
            if (v.regime, v.rule, v.cluster) not in shown:
                _print_violation(v)
    denied = sum(1 for f in flips if f.newly_denied)
    allowed = sum(1 for f in flips if f.newly_allowed)
    console.print(
        f"\n{decided} object(s) with a cross-cluster route decided in {clusters} cluster(s): {len(flips)} flip(s), "
        f"[red]{denied} newly denied[/], [green]{allowed} newly allowed[/], "
        f"[yellow]{len(flips) - denied - allowed} changed otherwise[/]"
    )


def _as_check_results(flips: Sequence[Flip]) -> list[CheckResult]:
    out = []
    for f in flips:
        file, _, line = f.source.rpartition(":")
        meta = f.manifest.get("metadata") or {}
        out.append(
            CheckResult(
                file=file or f.source,
                api_version=str(f.manifest.get("apiVersion", "")),
                kind=str(f.manifest.get("kind", "")),
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                decision=f.after,
                line=int(line) if line.isdigit() else 1,
            )
        )
    return out


def _decider(policy: LoadedPolicy, engine: str, opa_url: str | None, opa_token: str | None) -> Decider:
    try:
        return Decider(policy, open_engine(engine, opa_url, opa_token))
    except EngineError as exc:
        fail(f"cannot load the policy into the {engine} engine: {exc}")


def simulate_command(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Manifests as PATH (applied to --cluster) or CLUSTER=PATH; files, directories, -.", show_default=False
        ),
    ] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="The cluster plain PATHs are applied to.")] = None,
    candidate_policies: Annotated[
        Path | None, typer.Option("--candidate-policies", help="The candidate policy repo directory.")
    ] = None,
    add_cluster: Annotated[
        str | None,
        typer.Option("--add-cluster", help="Candidate: a new cluster of this name (with --region, --entity)."),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="The added cluster's region (regions.yaml).")] = None,
    entity: Annotated[str | None, typer.Option("--entity", help="The added cluster's entity (entities.yaml).")] = None,
    remove_cluster: Annotated[
        list[str] | None, typer.Option("--remove-cluster", help="Candidate: this cluster removed (repeatable).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--time", help="Candidate: decide the after at this time (ISO 8601).")
    ] = None,
    now: Annotated[str | None, typer.Option("--now", help="Decide the before at this time (default: now).")] = None,
    output: OutputOption = "text",
    namespace: NamespaceOption = None,
    strict: StrictOption = False,
    contexts: ContextsOption = None,
    kubeconfig: KubeconfigOption = None,
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
) -> None:
    """What if: list the objects whose decision flips under a candidate policy, cluster set or time."""
    if output not in FORMATS:
        fail(f"--output {output!r}: choose one of {', '.join(FORMATS)}")
    removed = list(remove_cluster or [])
    added: NewCluster | None = None
    if add_cluster is not None:
        if not region or not entity:
            fail("--add-cluster needs --region PROVIDER/CODE and --entity NAME (from regions.yaml, entities.yaml)")
        added = NewCluster(add_cluster, region, entity)
    elif region or entity:
        fail("--region and --entity describe the cluster of --add-cluster; give --add-cluster NAME")
    after_time = parse_time(at)
    before_time = parse_time(now) if now is not None else None
    if candidate_policies is None and added is None and not removed and after_time is None:
        fail("give a candidate: --candidate-policies DIR, --add-cluster, --remove-cluster or --time")
    current_dir = policies or BUNDLED
    current = open_policy(policies)
    if not targets and not contexts:
        fail("give the objects to decide: PATH (with --cluster), CLUSTER=PATH, or --context of a live cluster")
    groups = _targets(targets, cluster) if targets else {}
    live = live_cluster_objects(current, kubeconfig, contexts) if contexts else []
    with tempfile.TemporaryDirectory(prefix="policyengine-simulate-") as scratch:
        candidate_dir = candidate_policies or current_dir
        if candidate_policies is not None and not candidate_policies.is_dir():
            fail(f"--candidate-policies {candidate_policies} is not a directory")
        if added is not None or removed:
            try:
                candidate_dir = candidate_repo(
                    candidate_dir, Path(scratch) / "candidate", add=[added] if added else [], remove=removed
                )
            except CandidateError as exc:
                fail(str(exc))
        candidate = current if candidate_dir == current_dir else open_policy(candidate_dir)
        known = set(current.cluster_names()) | set(candidate.cluster_names())
        for name in groups:
            if name not in known:
                fail(f"cluster {name!r} is not a cluster of the policy repo (known: {', '.join(sorted(known))})")
        objects = []
        for name, paths in groups.items():
            placed, _ = placed_documents(paths, namespace, strict)
            bodies = [doc.body for doc, _, _ in placed]
            observed = observations_from_manifests(bodies, cluster=name, cluster_by_fsm_key=current.cluster_by_fsm_key)
            sources = [f"{doc.display}:{doc.line}" for doc, _, _ in placed]
            objects.append(ClusterObjects(name, bodies, observed, sources))
        objects.extend(live)
        before = Scenario(_decider(current, engine, opa_url, opa_token), before_time, "current")
        after_decider = before.decider if candidate is current else _decider(candidate, engine, opa_url, opa_token)
        after = Scenario(after_decider, after_time or before_time, "candidate")
        try:
            flips = simulate(objects, before, after)
        except ManifestError as exc:
            fail(str(exc))
    decided = sum(1 for group in objects for m in group.manifests if extractors_for(m))
    where = "bundled policies" if policies is None else str(current_dir)
    before_text = f"policy {current.revision[:19]} ({where})" + (
        f" at {rfc3339(before_time)}" if before_time else " now"
    )
    described = _describe_candidate(candidate_policies, added, removed, after_time)
    after_text = f"policy {candidate.revision[:19]}: {described}"
    after_moment = after_time or before_time
    if output == "json":
        document = {
            "before": {"policy_revision": current.revision, "time": rfc3339(before_time) if before_time else None},
            "after": {
                "policy_revision": candidate.revision,
                "time": rfc3339(after_moment) if after_moment else None,
                "candidate": described,
            },
            "summary": {
                "flips": len(flips),
                "newly_denied": sum(1 for f in flips if f.newly_denied),
                "newly_allowed": sum(1 for f in flips if f.newly_allowed),
            },
            "flips": [flip_json(f) for f in flips],
        }
        print(json.dumps(document, indent=2))
    elif output == "sarif":
        print(render_sarif(_as_check_results(flips), candidate.revision))
    elif output == "junit":
        print(render_junit(_as_check_results(flips), candidate.revision))
    else:
        render_flips_text(flips, decided, len(objects), before_text, after_text)
    raise typer.Exit(EXIT_VIOLATION if any(f.newly_denied for f in flips) else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
