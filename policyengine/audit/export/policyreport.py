"""PolicyReport YAML: `wgpolicyk8s.io/v1alpha2` PolicyReport/ClusterPolicyReport, or the
`openreports.io/v1alpha1` Report/ClusterReport successor shape.

One namespaced report per namespace (objects and routes of that namespace) and one cluster-scoped report
for what has no namespace. Each decision gives one result per violation (fail when enforced, warn when
only warned or dry-run), or one `pass` result when it allowed.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import yaml
from sqlalchemy import Engine

from policyengine.audit.chain import as_utc, format_time
from policyengine.audit.export.tabular import Span
from policyengine.audit.query import ExportFilter, stream_rows

Flavor = Literal["wgpolicyk8s", "openreports"]
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
SEVERITY = {"deny": "high", "rewrite": "medium", "warn": "low", "dryrun": "info"}


def _result_of(row: dict[str, Any], violation: dict[str, Any] | None) -> dict[str, Any]:
    when = as_utc(row["time"])
    properties = {
        "cluster": row["cluster"],
        "decision_id": row["decision_id"],
        "decision": row["decision"],
        "source": row["source"],
        "regions": ",".join(filter(None, [row["source_cluster"], row["destination_cluster"]])) or row["cluster"],
        "permitted_clusters": ",".join(row["permitted_clusters"]),
        "policy_revision": row["policy_revision"],
    }
    if row["service"]:
        properties["service"] = row["service"]
    resource: dict[str, Any] = {"apiVersion": row["api_version"], "kind": row["kind"], "name": row["name"]}
    if row["namespace"]:
        resource["namespace"] = row["namespace"]
    if violation is None:
        category = row["regimes"].split(",")[0] if row["regimes"] else "none"
        result, rule, message, severity = "pass", "residency", "route and data stay where permitted", "info"
    else:
        enforcement = str(violation.get("enforcement") or row["enforcement"])
        category = str(violation.get("regime", ""))
        rule = str(violation.get("rule", ""))
        severity = SEVERITY.get(enforcement, "medium")
        if row["decision"] == "rewrite":
            result = "warn"  # refused as asked, but rewritten to a permitted cluster
        elif row["dry_run"] or enforcement == "dryrun":
            result = "skip" if row["decision"] == "allow" else "warn"
        elif enforcement == "warn":
            result = "warn"
        else:
            result = "fail"
        article, remedy = violation.get("article", ""), violation.get("remedy", "")
        message = f"{violation.get('message', '')} [{article}] remedy: {remedy}"
        properties["article"] = str(violation.get("article", ""))
        properties["remedy"] = str(violation.get("remedy", ""))
        if violation.get("cluster"):
            properties["violating_cluster"] = str(violation["cluster"])
    out: dict[str, Any] = {
        "source": "policyengine",
        "policy": f"policyengine-{category.lower()}",
        "rule": rule,
        "category": category,
        "severity": severity,
        "result": result,
        "scored": True,
        "message": message,
        "timestamp": {"seconds": int(when.timestamp()), "nanos": when.microsecond * 1000},
        "properties": properties,
    }
    if row["kind"]:
        out["resources"] = [resource]
    return out


def write_policyreport(
    engine: Engine,
    flt: ExportFilter,
    out: TextIO,
    flavor: Flavor = "wgpolicyk8s",
    progress: Callable[[int], None] | None = None,
) -> Span:
    """A multi-document YAML stream of reports (grouped by namespace) with their summaries."""
    span = Span()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stream_rows(engine, flt, COLUMNS):
        span.see(as_utc(row["time"]))
        namespace = row["namespace"] or (row["service"].split("/", 1)[0] if "/" in row["service"] else "")
        violations = row["violations"] or []
        if isinstance(violations, str):
            violations = json.loads(violations)
        results = [_result_of(row, v) for v in violations] or [_result_of(row, None)]
        groups[namespace].extend(results)
        if progress is not None and span.rows % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(span.rows % 10_000)
    documents = [_report(namespace, results, flavor) for namespace, results in sorted(groups.items())]
    yaml.safe_dump_all(documents, out, sort_keys=False, allow_unicode=True, width=200)
    return span


def _report(namespace: str, results: list[dict[str, Any]], flavor: Flavor) -> dict[str, Any]:
    counts = Counter(r["result"] for r in results)
    if flavor == "openreports":
        api_version, kind = "openreports.io/v1alpha1", "Report" if namespace else "ClusterReport"
    else:
        api_version, kind = "wgpolicyk8s.io/v1alpha2", "PolicyReport" if namespace else "ClusterPolicyReport"
    metadata: dict[str, Any] = {
        "name": f"policyengine-{namespace}" if namespace else "policyengine-cluster",
        "labels": {"app.kubernetes.io/managed-by": "policyengine"},
        "annotations": {"policyengine.io/generated-at": format_time(datetime.now(UTC))},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "source": "policyengine",
        "summary": {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "error", "skip")},
        "results": results,
    }
