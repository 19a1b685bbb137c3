"""Build PolicyReports from current results: one report per namespace, stable names, a hard size cap.

`build_reports(results, api=...)` groups `ResourceResult`s by namespace into one `PolicyReport`
(`wgpolicyk8s.io/v1alpha2`, as Kyverno and Policy Reporter read) or `Report` (`openreports.io/v1alpha1`,
its successor) per namespace, and one `ClusterPolicyReport` / `ClusterReport` for what has no namespace.
Names are fixed (`policyengine-<namespace>`, `policyengine-cluster`) so a writer updates each report in
place. Results are sorted by resource then policy and rule; `summary` counts the results the report
holds.

The API server refuses a request body over about 1.5 MiB (etcd's default limit), so each report's JSON
stays under `cap_bytes` (1 MiB by default). When the results do not fit, fails are kept before errors,
warns, skips and passes; the report then carries the label `policyengine.io/truncated: "true"` and
annotations saying how many results of each kind were cut (`policyengine.io/omitted`), how many there
were in all (`policyengine.io/results-total`), and how to get every result
(`policyengine.io/complete-results`, the caller's `rest_hint`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from policyengine.reports.results import RESULT_ORDER, ResourceResult

ReportApi = Literal["wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1"]
REPORT_APIS: tuple[str, ...] = ("wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1")
API_ALIASES = {
    "policyreport": "wgpolicyk8s.io/v1alpha2",
    "wgpolicyk8s": "wgpolicyk8s.io/v1alpha2",
    "openreports": "openreports.io/v1alpha1",
}
DEFAULT_CAP = 1024 * 1024
MESSAGE_LIMIT = 1024
SUMMARY_KEYS = ("pass", "fail", "warn", "error", "skip")
MANAGED_BY = {"app.kubernetes.io/managed-by": "policyengine"}
TRUNCATED_LABEL = "policyengine.io/truncated"
OMITTED = "policyengine.io/omitted"
TOTAL = "policyengine.io/results-total"
COMPLETE = "policyengine.io/complete-results"
GENERATED = "policyengine.io/generated-at"
DEFAULT_REST_HINT = (
    "policyengine audit export --format jsonl{namespace_option} (every decision), or policyengine scan -o json"
)
_SKELETON_RESERVE = 4096  # room for the summary and the truncation annotations


def report_api(name: str) -> ReportApi:
    """The report API for a name or alias ("policyreport", "openreports", or the apiVersion itself).

    Raises ValueError naming the choices."""
    api = API_ALIASES.get(name, name)
    if api not in REPORT_APIS:
        raise ValueError(f"report API {name!r} is not one of {', '.join([*API_ALIASES, *REPORT_APIS])}")
    return api  # type: ignore[return-value]


def report_name(namespace: str) -> str:
    """The fixed name of a namespace's report (`policyengine-cluster` for the cluster-scoped one)."""
    return f"policyengine-{namespace}" if namespace else "policyengine-cluster"


def _kind(api: ReportApi, namespace: str) -> str:
    if api == "openreports.io/v1alpha1":
        return "Report" if namespace else "ClusterReport"
    return "PolicyReport" if namespace else "ClusterPolicyReport"


def _time(moment: datetime) -> dict[str, int]:
    moment = moment.astimezone(UTC)
    return {"seconds": int(moment.timestamp()), "nanos": moment.microsecond * 1000}


def result_entry(r: ResourceResult, source: str) -> dict[str, Any]:
    """One `results[]` entry of a report."""
    message = r.message if len(r.message) <= MESSAGE_LIMIT else r.message[: MESSAGE_LIMIT - 1] + "…"
    entry: dict[str, Any] = {
        "source": source,
        "policy": r.policy,
        "rule": r.rule,
        "category": r.category,
        "result": r.result,
        "scored": True,
        "message": message,
        "timestamp": _time(r.timestamp),
        "properties": dict(r.properties),
    }
    if r.severity:
        entry["severity"] = r.severity
    if r.kind:
        resource: dict[str, Any] = {"apiVersion": r.api_version, "kind": r.kind, "name": r.name}
        if r.namespace:
            resource["namespace"] = r.namespace
        if r.uid:
            resource["uid"] = r.uid
        entry["resources"] = [resource]
    return entry


def _sort_key(r: ResourceResult) -> tuple[str, ...]:
    return (r.kind, r.name, r.api_version, r.properties.get("cluster", ""), r.policy, r.rule)


def _size(document: Any) -> int:
    """Bytes of `document` as a client sends it (json.dumps defaults, as the kubernetes client does)."""
    return len(json.dumps(document, ensure_ascii=False).encode())


def build_report(
    namespace: str,
    results: Sequence[ResourceResult],
    *,
    api: ReportApi = "wgpolicyk8s.io/v1alpha2",
    cap_bytes: int = DEFAULT_CAP,
    source: str = "policyengine",
    rest_hint: str | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The report of one namespace ("" = cluster-scoped); see the module docstring."""
    priority = {value: i for i, value in enumerate(RESULT_ORDER)}
    ranked = sorted(results, key=lambda r: (priority[r.result], _sort_key(r)))
    entries = [result_entry(r, source) for r in ranked]
    metadata: dict[str, Any] = {
        "name": report_name(namespace),
        "labels": dict(MANAGED_BY),
        "annotations": {GENERATED: (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    if namespace:
        metadata["namespace"] = namespace
    report: dict[str, Any] = {"apiVersion": api, "kind": _kind(api, namespace), "metadata": metadata}
    if api == "openreports.io/v1alpha1":
        report["source"] = source
    budget = cap_bytes - _size(report) - _SKELETON_RESERVE
    kept = 0
    used = 0
    for entry in entries:
        size = _size(entry) + 2
        if used + size > budget:
            break
        used += size
        kept += 1
    while True:
        chosen = sorted(range(kept), key=lambda i: _sort_key(ranked[i]))
        counts: Counter[str] = Counter(ranked[i].result for i in chosen)
        report["summary"] = {k: counts[k] for k in SUMMARY_KEYS}
        report["results"] = [entries[i] for i in chosen]
        if kept < len(entries):
            omitted: Counter[str] = Counter(r.result for r in ranked[kept:])
            metadata["labels"][TRUNCATED_LABEL] = "true"
            metadata["annotations"][OMITTED] = ",".join(f"{k}={omitted[k]}" for k in RESULT_ORDER if omitted[k])
            metadata["annotations"][TOTAL] = str(len(entries))
            hint = rest_hint if rest_hint is not None else DEFAULT_REST_HINT
            option = f" --namespace {namespace}" if namespace else ""
            hint = hint.replace("{namespace_option}", option).replace("{namespace}", namespace)
            metadata["annotations"][COMPLETE] = hint
        if _size(report) <= cap_bytes or kept == 0:
            return report
        kept -= 1


def build_reports(
    results: Iterable[ResourceResult],
    *,
    api: ReportApi = "wgpolicyk8s.io/v1alpha2",
    cap_bytes: int = DEFAULT_CAP,
    source: str = "policyengine",
    rest_hint: str | None = None,
    generated_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """One report per namespace (sorted by namespace, the cluster-scoped one first) of `results`,
    which should hold one result per (resource, rule) (`results.latest` makes it so)."""
    by_namespace: dict[str, list[ResourceResult]] = {}
    for r in results:
        by_namespace.setdefault(r.namespace, []).append(r)
    return [
        build_report(
            namespace,
            group,
            api=api,
            cap_bytes=cap_bytes,
            source=source,
            rest_hint=rest_hint,
            generated_at=generated_at,
        )
        for namespace, group in sorted(by_namespace.items())
    ]
