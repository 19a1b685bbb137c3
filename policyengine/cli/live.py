"""`policyengine scan` and `policyengine inventory`: live clusters from a laptop or CI, by kubeconfig context.

`scan --context eu-1 --context us-1` runs the background scan's work once per context: every object of
every crossing kind, decided as if admitted now in the cluster the policy repo maps the context to
(clusters.yaml `kube_context`, default the cluster's name; a context mapped to no cluster is exit 2).
It prints the results in every `check` format and exits like `check` (1 when something enforced as deny
is violated); `--write-reports` also writes each cluster's PolicyReports (or OpenReports). `inventory`
lists what each cluster observes: the placement of imported services against services.yaml (drift),
and clusters whose nodes report another region (flags); `--strict` exits 1 when there is either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from policyengine.cli.common import (
    EXIT_OK,
    EXIT_VIOLATION,
    EngineOption,
    OpaTokenOption,
    OpaUrlOption,
    OutputOption,
    PoliciesOption,
    console,
    err_console,
    fail,
    open_engine,
    open_policy,
    parse_time,
)
from policyengine.cli.formats import FORMATS, CheckResult, CheckSummary, render_json, render_junit, render_sarif
from policyengine.cli.formats import render_text as render_check_text

if TYPE_CHECKING:
    from policyengine.k8s.client import Connection
    from policyengine.policy import LoadedPolicy
    from policyengine.simulate import ClusterObjects

KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", show_default=False
    ),
]
ContextsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--context",
        help="A kubeconfig context to read (repeat for several; default: the current one). Each is decided as "
        "the cluster clusters.yaml maps it to (kube_context, default the cluster's name).",
        show_default=False,
    ),
]


def _clusters_of(policy: LoadedPolicy, kubeconfig: Path | None, contexts: list[str] | None) -> list[tuple[str, str]]:
    """(context, cluster) for each context asked for; exit 2 naming a context that cannot be used."""
    from policyengine.k8s.client import ClusterConfigError
    from policyengine.k8s.client import contexts as kube_contexts

    try:
        names, current = kube_contexts(kubeconfig)
    except ClusterConfigError as exc:
        fail(str(exc))
    chosen = list(dict.fromkeys(contexts or ([current] if current else [])))
    if not chosen:
        fail("the kubeconfig has no current context: pass --context")
    out = []
    for context in chosen:
        if context not in names:
            fail(f"--context {context}: the kubeconfig has no such context (it has: {', '.join(names) or 'none'})")
        cluster = policy.cluster_by_kube_context(context)
        if cluster is None:
            mapped = ", ".join(f"{c} ({policy.cluster_info(c).kube_context})" for c in policy.cluster_names())  # type: ignore[union-attr]
            fail(
                f"--context {context}: no cluster of the policy repo is reached by this context; set "
                f"`kube_context: {context}` on its cluster in clusters.yaml (clusters and their contexts: {mapped})"
            )
        out.append((context, cluster))
    return out


def _connect(kubeconfig: Path | None, context: str) -> Connection:
    from policyengine.k8s.client import ClusterConfigError, connect

    try:
        return connect(kubeconfig, context)
    except ClusterConfigError as exc:
        fail(str(exc))


def _unreachable(context: str, exc: Exception) -> None:
    status = getattr(exc, "status", None)
    why = f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else f"{type(exc).__name__}: {exc}"
    fail(f"--context {context}: the cluster could not be read ({why})")


def scan_command(
    contexts: ContextsOption = None,
    kubeconfig: KubeconfigOption = None,
    output: OutputOption = "text",
    write_reports: Annotated[
        bool, typer.Option("--write-reports", help="Write each cluster's reports (one per namespace), in place.")
    ] = False,
    report_api: Annotated[
        str, typer.Option(help="Reports to write: wgpolicyk8s.io/v1alpha2 (PolicyReport) or openreports.io/v1alpha1.")
    ] = "wgpolicyk8s.io/v1alpha2",
    report_cap_bytes: Annotated[int, typer.Option(min=10_000, help="Largest report written.")] = 1_000_000,
    at: Annotated[str | None, typer.Option("--time", help="Decide as of this time (ISO 8601).")] = None,
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
) -> None:
    """Decide every crossing object of live clusters (one or more kubeconfig contexts), as admitted now."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from policyengine.decide import Decider
    from policyengine.k8s.reports_writer import write_reports as write
    from policyengine.k8s.scan import scan_cluster
    from policyengine.reports import build_reports
    from policyengine.reports import report_api as parse_report_api

    if output not in FORMATS:
        fail(f"--output {output!r}: choose one of {', '.join(FORMATS)}")
    try:
        api_version = parse_report_api(report_api)
    except ValueError as exc:
        fail(f"--report-api: {exc}")
    now = parse_time(at)
    policy = open_policy(policies)
    targets = _clusters_of(policy, kubeconfig, contexts)
    decider = Decider(policy, open_engine(engine, opa_url, opa_token))
    results: list[CheckResult] = []
    listed = 0
    for context, cluster in targets:
        connection = _connect(kubeconfig, context)
        try:
            scan = scan_cluster(connection.api, decider, cluster, now=now)
        except (ApiException, HTTPError, OSError) as exc:
            _unreachable(context, exc)
        listed += sum(scan.listed.values())
        for o in scan.errors:
            err_console.print(f"[red]error:[/] {context}: {o.error}", soft_wrap=True, markup=True)
        for o in scan.decided:
            assert o.decision is not None
            ref = o.ref
            results.append(CheckResult(context, ref.api_version, ref.kind, ref.namespace, ref.name, o.decision, line=0))
        if scan.not_served:
            err_console.print(f"note: {context}: not served (CRD not installed): {', '.join(scan.not_served)}")
        if write_reports:
            reports = build_reports(scan.results(), api=api_version, cap_bytes=report_cap_bytes)
            try:
                outcome = write(connection.api, reports, api_version)
            except (ApiException, HTTPError, OSError) as exc:
                _unreachable(context, exc)
            err_console.print(f"{context}: reports {outcome.summary}", soft_wrap=True)
    summary = CheckSummary(read=listed)
    if output == "json":
        print(render_json(results, policy.revision, summary))
    elif output == "sarif":
        print(render_sarif(results, policy.revision))
    elif output == "junit":
        print(render_junit(results, policy.revision))
    else:
        render_check_text(results, policy.revision, console, summary)
    raise typer.Exit(EXIT_VIOLATION if any(r.decision.enforced for r in results) else EXIT_OK)


def inventory_command(
    contexts: ContextsOption = None,
    kubeconfig: KubeconfigOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Output format: text | json.")] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when there is drift or a flagged cluster.")] = False,
    policies: PoliciesOption = None,
) -> None:
    """List what live clusters observe: placement against services.yaml (drift), node regions (flags)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from policyengine.k8s.scan import observe
    from policyengine.placement import placement_drift, region_flags

    if output not in ("text", "json"):
        fail(f"--output {output!r}: choose text or json")
    policy = open_policy(policies)
    targets = _clusters_of(policy, kubeconfig, contexts)
    clusters: list[dict[str, Any]] = []
    for context, cluster in targets:
        connection = _connect(kubeconfig, context)
        try:
            observed = observe(connection.api, cluster, policy.cluster_by_fsm_key)
        except (ApiException, HTTPError, OSError) as exc:
            _unreachable(context, exc)
        drift = {d.service: d for d in placement_drift(policy, observed)}
        placement = []
        for service in sorted(observed.service_clusters):
            info = policy.service(service)
            d = drift.get(service)
            placement.append({
                "service": service,
                "observed": sorted(observed.clusters_of(service)),
                "declared": sorted(info.clusters) if info is not None else [],
                "drift": d.message.partition(": ")[2] if d is not None else "",
                "unknown": list(d.unknown) if d is not None else [],
            })  # fmt: skip
        facts = policy.cluster_info(cluster)
        clusters.append({
            "context": context,
            "cluster": cluster,
            "server": connection.server,
            "declared_region": facts.region if facts is not None else "",
            "node_regions": sorted(observed.node_regions.get(cluster, ())),
            "namespaces": len(observed.namespace_labels),
            "placement": placement,
            "drift": len(drift),
            "flags": [f.message for f in region_flags(policy, observed)],
        })  # fmt: skip
    if output == "json":
        print(json.dumps({"policy_revision": policy.revision, "clusters": clusters}, indent=2))
    else:
        _render_inventory(clusters)
    troubled = any(c["drift"] or c["flags"] for c in clusters)
    raise typer.Exit(EXIT_VIOLATION if strict and troubled else EXIT_OK)


def _render_inventory(clusters: list[dict[str, Any]]) -> None:
    for c in clusters:
        regions = ", ".join(c["node_regions"]) or "none reported"
        console.print(f"[bold]{c['context']}[/] → cluster {c['cluster']} ({c['server']})", soft_wrap=True)
        console.print(f"  nodes report region {regions}; clusters.yaml: {c['declared_region']}", soft_wrap=True)
        for flag in c["flags"]:
            console.print(f"  [bold red]FLAGGED[/] {flag}", soft_wrap=True)
        console.print(f"  {c['namespaces']} namespace(s); {len(c['placement'])} imported service(s) observed:")
        for p in c["placement"]:
            style, label = ("red", "DRIFT") if p["drift"] else ("green", "ok")
            declared = ", ".join(p["declared"]) or "(not in services.yaml)"
            console.print(
                f"    [{style}]{label:<5}[/] {p['service']}: observed {', '.join(p['observed'])}; declared {declared}",
                soft_wrap=True,
            )
            if p["drift"]:
                console.print(f"          {p['drift']}", soft_wrap=True)
    drift = sum(c["drift"] for c in clusters)
    flags = sum(len(c["flags"]) for c in clusters)
    console.print(f"\n{len(clusters)} cluster(s): {drift} service(s) with drift, {flags} flagged cluster(s)")


def live_cluster_objects(
    policy: LoadedPolicy, kubeconfig: Path | None, contexts: list[str] | None
) -> list[ClusterObjects]:
    """The objects of each context's cluster as `simulate` decides them: every object of every kind the
    scan lists, and what the cluster observes. Exit 2 naming a context that cannot be used or read."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from policyengine.k8s import kinds
    from policyengine.k8s.scan import list_kinds, observe
    from policyengine.simulate import ClusterObjects

    out = []
    for context, cluster in _clusters_of(policy, kubeconfig, contexts):
        connection = _connect(kubeconfig, context)
        try:
            listed, _ = list_kinds(connection.api, kinds.SCAN)
            observed = observe(connection.api, cluster, policy.cluster_by_fsm_key)
        except (ApiException, HTTPError, OSError) as exc:
            _unreachable(context, exc)
        bodies = [o for items in listed.values() for o in items]
        out.append(ClusterObjects(cluster, bodies, observed, [f"context {context}"] * len(bodies)))
    return out


def register(app: typer.Typer) -> None:
    """Add `scan` and `inventory` to the main app."""
    app.command("scan")(scan_command)
    app.command("inventory")(inventory_command)
