"""PolicyReport YAML of the state in the period: the latest result per resource and rule.

`policyengine audit export --format policyreport` (`--report-api openreports` for
`openreports.io/v1alpha1`) reads the matching rows in time order, turns each decision into results
(`policyengine.reports.results_of`), keeps the newest evaluation of each resource (per cluster:
`latest`), and writes one report per namespace with the same builder the live scan uses
(`policyengine.reports.build_reports`), each under the size cap. A capped report says what was cut and
gives the export command that lists every decision of that namespace in the same period.

A route the runtime filter decided has no object: it is reported as a result without `resources`,
named after the service and the route, in the service's namespace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import yaml
from sqlalchemy import Engine

from policyengine.audit.chain import as_utc, format_time
from policyengine.audit.export.tabular import Span
from policyengine.audit.query import ExportFilter, stream_rows
from policyengine.decision import Decision, Enforcement, Outcome, Violation
from policyengine.reports import DEFAULT_CAP, ReportApi, ResourceRef, ResourceResult, build_reports, latest, results_of

COLUMNS = (
    "time",
    "decision_id",
    "source",
    "cluster",
    "api_version",
    "kind",
    "namespace",
    "name",
    "service",
    "source_cluster",
    "destination_cluster",
    "regimes",
    "decision",
    "enforcement",
    "violations",
    "permitted_clusters",
    "policy_revision",
    "dry_run",
)
PROGRESS_STEP = 10_000


def _enforcement(value: Any) -> Enforcement:
    try:
        return Enforcement(str(value))
    except ValueError:
        return Enforcement.DENY


def decision_of(row: dict[str, Any]) -> Decision:
    """The Decision an audit row records (what results need of it)."""
    violations = row["violations"] or []
    if isinstance(violations, str):
        violations = json.loads(violations)
    return Decision(
        decision_id=str(row["decision_id"]),
        outcome=Outcome(str(row["decision"])),
        enforcement=_enforcement(row["enforcement"]),
        violations=tuple(Violation.from_dict(v) for v in violations if isinstance(v, dict)),
        permitted_clusters=tuple(row["permitted_clusters"] or ()),
        policy_revision=str(row["policy_revision"] or ""),
        engine="",
        latency_us=0.0,
        regimes=tuple(r for r in str(row["regimes"] or "").split(",") if r),
    )


def resource_of(row: dict[str, Any]) -> ResourceRef:
    """The object a row is about, or for a routing row its route (kind "")."""
    if row["kind"]:
        return ResourceRef(row["namespace"] or "", row["kind"], row["api_version"] or "", row["name"] or "")
    service = str(row["service"] or "")
    namespace = service.split("/", 1)[0] if "/" in service else ""
    route = f"{service} {row['source_cluster'] or '?'}->{row['destination_cluster'] or '?'}"
    return ResourceRef(namespace, "", "", route)


def results_of_row(row: dict[str, Any]) -> list[ResourceResult]:
    """The results of one audit row."""
    properties = {"source": str(row["source"] or "")}
    if row["service"]:
        properties["service"] = str(row["service"])
    return results_of(
        decision_of(row),
        resource_of(row),
        cluster=str(row["cluster"] or ""),
        timestamp=as_utc(row["time"]),
        dry_run=bool(row["dry_run"]),
        properties=properties,
    )


def rest_hint(flt: ExportFilter) -> str:
    """The export command that lists every decision behind a report (its namespace filled in)."""
    parts = ["policyengine audit export --format jsonl --out decisions.jsonl{namespace_option}"]
    if flt.since is not None:
        parts.append(f"--since {format_time(flt.since)}")
    if flt.until is not None:
        parts.append(f"--until {format_time(flt.until)}")
    if flt.cluster:
        parts.append(f"--cluster {flt.cluster}")
    return " ".join(parts)


def write_policyreport(
    engine: Engine,
    flt: ExportFilter,
    out: TextIO,
    api: ReportApi = "wgpolicyk8s.io/v1alpha2",
    progress: Callable[[int], None] | None = None,
    cap_bytes: int = DEFAULT_CAP,
) -> Span:
    """A multi-document YAML stream of the reports (one per namespace) of the state in `flt`'s period."""
    span = Span()

    def results() -> Iterator[ResourceResult]:
        for row in stream_rows(engine, flt, COLUMNS):
            span.see(as_utc(row["time"]))
            if progress is not None and span.rows % PROGRESS_STEP == 0:
                progress(PROGRESS_STEP)
            yield from results_of_row(row)

    reports = build_reports(latest(results()), api=api, cap_bytes=cap_bytes, rest_hint=rest_hint(flt))
    if progress is not None:
        progress(span.rows % PROGRESS_STEP)
    yaml.safe_dump_all(reports, out, sort_keys=False, allow_unicode=True, width=200)
    return span
