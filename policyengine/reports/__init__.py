"""PolicyReports of the current state: results per (resource, rule), and reports built from them.

Pure (no `kubernetes` client): `policyengine.k8s` writes what `build_reports` returns, and
`policyengine audit export --format policyreport` prints it.

- `results_of(decision, ResourceRef.of(manifest), cluster=..., timestamp=...)` -> `list[ResourceResult]`
- `latest(results)`: the newest evaluation of each resource, one result per (resource, rule)
- `build_reports(results, api="wgpolicyk8s.io/v1alpha2" | "openreports.io/v1alpha1", cap_bytes=DEFAULT_CAP)`
  -> one report dict per namespace, each under the cap (see `build`)
"""

from policyengine.reports.build import (
    DEFAULT_CAP,
    REPORT_APIS,
    ReportApi,
    build_report,
    build_reports,
    report_api,
    report_name,
)
from policyengine.reports.results import ResourceRef, ResourceResult, latest, results_of

__all__ = [
    "DEFAULT_CAP",
    "REPORT_APIS",
    "ReportApi",
    "ResourceRef",
    "ResourceResult",
    "build_report",
    "build_reports",
    "latest",
    "report_api",
    "report_name",
    "results_of",
]
