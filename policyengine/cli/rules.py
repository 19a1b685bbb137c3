"""`policyengine check|test|explain`: offline evaluation of manifests and Rego unit tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

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
from policyengine.decide import Decider
from policyengine.engine import EngineError
from policyengine.route import Route


def _decider(policies: Path | None, engine: str, opa_url: str | None, opa_token: str | None) -> Decider:
    policy = open_policy(policies)
    try:
        return Decider(policy, open_engine(engine, opa_url, opa_token))
    except EngineError as exc:
        fail(f"cannot load the policy into the {engine} engine: {exc}")


def test_command(
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
    run: Annotated[str | None, typer.Option("--run", "-r", help="Only tests whose name matches this regex.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every test, not only failures.")] = False,
) -> None:
    """Run every `test_*` Rego rule of the bundled library and the policy repo (like `opa test`)."""
    policy = open_policy(policies)
    rego = open_engine(engine, opa_url, opa_token)
    try:
        rego.load(policy.modules, policy.data)
        results = rego.run_tests()
    except EngineError as exc:
        fail(str(exc))
    if run:
        try:
            pattern = re.compile(run)
        except re.error as exc:
            fail(f"--run {run!r} is not a valid regular expression: {exc}")
        results = [r for r in results if pattern.search(r.name)]
    failed = [r for r in results if not r.passed]
    for r in results:
        if verbose or not r.passed:
            mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            detail = f" ({r.error})" if r.error else ""
            console.print(f"{r.file}:{r.row}: {mark} data.{r.package}.{r.name} {r.duration_us:.0f}µs{detail}")
    if not results:
        fail("no test_* rules found", EXIT_VIOLATION)
    colour = "red" if failed else "green"
    console.print(f"[{colour}]PASS: {len(results) - len(failed)}/{len(results)}, FAIL: {len(failed)}[/]")
    raise typer.Exit(EXIT_VIOLATION if failed else EXIT_OK)


def explain_command(
    service: Annotated[str, typer.Option("--service", help="Destination service as NAMESPACE/NAME.")],
    source: Annotated[str, typer.Option("--from", help="Cluster of the caller.")],
    destination: Annotated[str, typer.Option("--to", help="Cluster of the service's endpoints.")],
    workload: Annotated[
        str | None, typer.Option("--workload", help="The caller as NAMESPACE/NAME, classified like a service.")
    ] = None,
    opt_out: Annotated[bool, typer.Option("--opt-out", help="The request carries Sec-GPC: 1.")] = False,
    at: Annotated[str | None, typer.Option("--time", help="Decide as of this time (ISO 8601).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", "--format", help="text or json.")] = "text",
    policies: PoliciesOption = None,
    engine: EngineOption = "regorus",
    opa_url: OpaUrlOption = None,
    opa_token: OpaTokenOption = None,
) -> None:
    """Decide one route and show each step: where both ends are, regimes, mechanisms, rule hits."""
    if "/" not in service:
        fail(f"--service {service!r} must be NAMESPACE/NAME")
    if output not in ("text", "json"):
        fail(f"--output {output!r}: choose text or json")
    decider = _decider(policies, engine, opa_url, opa_token)
    policy = decider.policy
    # A cluster the repo does not declare is decided too (a deny, rule unknown-cluster): "what if we
    # route to X" is a question the answer should explain, not refuse.
    for flag, cluster in (("--from", source), ("--to", destination)):
        if policy.cluster_info(cluster) is None:
            err_console.print(
                f"note: {flag} {cluster!r} is not declared in policies/clusters.yaml "
                f"(known: {', '.join(policy.cluster_names())}); deciding it as an unknown cluster",
                soft_wrap=True,
                markup=False,
            )
    namespace, name = service.split("/", 1)
    dest_profile = policy.classify(namespace, name)
    src_profile = None
    if workload:
        if "/" not in workload:
            fail(f"--workload {workload!r} must be NAMESPACE/NAME")
        src_namespace, src_name = workload.split("/", 1)
        src_profile = policy.classify(src_namespace, src_name)
    route = Route(
        service=service,
        source=decider.endpoint(source, workload=workload, data=src_profile),
        destination=decider.endpoint(destination, workload=service, data=dest_profile),
        via="policyengine explain",
        opt_out=opt_out,
    )
    now = parse_time(at)
    try:
        steps = decider.explain(route, now=now)
    except EngineError as exc:
        fail(str(exc))
    decision = decider.decide(route, now=now)
    if output == "json":
        console.print_json(json.dumps({"steps": steps, "decision": decision.to_dict()}))
        raise typer.Exit(EXIT_VIOLATION if decision.enforced else EXIT_OK)
    console.print(
        f"[bold]Route[/] {service}: {source} -> {destination} (policy {decider.revision[:19]}, as of {steps['today']})"
    )
    console.print("[bold]1. Where the ends are[/] (from policies/clusters.yaml and regions.yaml)")
    for end in steps["ends"]:
        if end.get("known"):
            console.print(
                f"   {end['role']}: {end['cluster']} in {end['region']} -> {end['jurisdiction']} "
                f"(also {', '.join(j for j in end['in'] if j != end['jurisdiction']) or 'no group'}), "
                f"run by {end['entity']}; "
                f"data classes {end['data_classes'] or '—'}, subjects {end['subjects'] or '—'}"
            )
        else:
            console.print(f"   {end['role']}: {end['cluster']} — [red]unknown cluster[/]")
    console.print(f"[bold]2. Regimes of the data moved[/]: {', '.join(steps['regimes']) or 'none (unregulated)'}")
    console.print("[bold]3. What each regime says about each end[/]")
    for check in steps["checks"]:
        verdict = "[green]permitted[/]" if check["permitted"] else "[red]not permitted[/]"
        facts = check.get("facts") or {}
        basis = []
        if facts.get("home"):
            basis.append("in the regime's home")
        if facts.get("adequate_until"):
            basis.append(f"adequacy decision until {facts['adequate_until']}")
        if facts.get("unmet_condition"):
            basis.append(f"adequacy condition {facts['unmet_condition']} not met by its entity")
        if facts.get("own") and check["regime"] == "CCPA":
            basis.append("run by the business itself")
        if facts.get("role"):
            basis.append(f"entity role {facts['role']}")
        detail = f" ({'; '.join(basis)})" if basis else ""
        console.print(f"   {check['regime']} at {check['cluster']}: {verdict}{detail}")
        for m in check["mechanisms"]:
            state = "valid" if m["valid"] else "[red]expired[/]"
            console.print(f"      mechanism {m['id']} ({m['type']}, expires {m['expires'] or 'never'}): {state}")
    console.print("[bold]4. Rule hits[/]")
    for v in decision.violations:
        console.print(f"   [red]{v.regime} {v.rule}[/] ({v.article}): {v.message}\n      → {v.remedy}", soft_wrap=True)
    if not decision.violations:
        console.print("   none")
    console.print(
        f"[bold]Decision[/]: {decision.outcome.value} (enforcement {decision.enforcement.value}); "
        f"permitted clusters: {', '.join(decision.permitted_clusters) or 'none'}; id {decision.decision_id}"
    )
    raise typer.Exit(EXIT_VIOLATION if decision.enforced else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add check, test and explain to the main app."""
    from policyengine.cli.check import check_command

    app.command("check")(check_command)
    app.command("test")(test_command)
    app.command("explain")(explain_command)


__all__ = ["EXIT_USAGE", "err_console", "register"]
