"""Write the scan's reports to the cluster, each updated in place.

For each report `build_reports` made (one per namespace, fixed names): get it; when it exists, update
it with the resourceVersion just read (a `409 Conflict`, someone wrote in between, reads and updates
again, up to `attempts` times); when it does not (`404`), create it (a `409 AlreadyExists` means it was
created meanwhile: update it instead). Reports of ours from an earlier scan whose namespace has no
result now are updated to hold none, so no report keeps a state that is gone. A report the API server
refuses as too large (`413`) or invalid (`422`) is logged with its size and what the builder already
cut (the report's `policyengine.io/omitted` annotation); the others are still written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from policyengine.k8s import kinds
from policyengine.k8s.kinds import Kind

log = logging.getLogger("policyengine.scan")
MANAGED = "app.kubernetes.io/managed-by=policyengine"
OMITTED = "policyengine.io/omitted"


@dataclass
class WriteOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "namespace/name: why"

    @property
    def summary(self) -> str:
        parts = [f"{len(self.created)} created", f"{len(self.updated)} updated"]
        if self.emptied:
            parts.append(f"{len(self.emptied)} emptied")
        if self.refused:
            parts.append(f"{len(self.refused)} refused ({'; '.join(self.refused)})")
        return ", ".join(parts)


def _kind_of(report: Mapping[str, Any]) -> Kind:
    group = str(report.get("apiVersion", "")).rpartition("/")[0]
    for kind in kinds.REPORTS:
        if kind.group == group and kind.kind == report.get("kind"):
            return kind
    raise ValueError(f"not a report kind: {report.get('apiVersion')} {report.get('kind')}")


class _Reports:
    """get/create/replace/list of one report kind through CustomObjectsApi (namespaced or cluster)."""

    def __init__(self, api: client.ApiClient, kind: Kind) -> None:
        self.api = client.CustomObjectsApi(api)
        self.kind = kind
        self.version = kind.versions[0]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        k = self.kind
        found: Any
        if k.namespaced:
            found = self.api.get_namespaced_custom_object(k.group, self.version, namespace, k.plural, name)
        else:
            found = self.api.get_cluster_custom_object(k.group, self.version, k.plural, name)
        return dict(found)

    def create(self, namespace: str, body: Mapping[str, Any]) -> None:
        k = self.kind
        if k.namespaced:
            self.api.create_namespaced_custom_object(k.group, self.version, namespace, k.plural, dict(body))
        else:
            self.api.create_cluster_custom_object(k.group, self.version, k.plural, dict(body))

    def replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        k = self.kind
        if k.namespaced:
            self.api.replace_namespaced_custom_object(k.group, self.version, namespace, k.plural, name, dict(body))
        else:
            self.api.replace_cluster_custom_object(k.group, self.version, k.plural, name, dict(body))

    def ours(self) -> list[dict[str, Any]]:
        k = self.kind
        found: Any = self.api.list_cluster_custom_object(k.group, self.version, k.plural, label_selector=MANAGED)
        return [dict(i) for i in found.get("items") or []]


def write_report(api: client.ApiClient, report: Mapping[str, Any], outcome: WriteOutcome, attempts: int = 5) -> None:
    """Create or update one report in place (see the module docstring); the outcome says which."""
    kind = _kind_of(report)
    reports = _Reports(api, kind)
    meta = report.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "")
    where = f"{namespace}/{name}" if namespace else name
    for _ in range(attempts):
        try:
            current = reports.get(namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                return _refused(outcome, where, report, exc)
            try:
                reports.create(namespace, report)
                outcome.created.append(where)
                return
            except ApiException as race:
                if race.status == 409:
                    continue  # created meanwhile: read it and update
                return _refused(outcome, where, report, race)
        body = {**report, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        try:
            reports.replace(namespace, name, body)
            outcome.updated.append(where)
            return
        except ApiException as exc:
            if exc.status == 409:
                continue  # written meanwhile: read again
            return _refused(outcome, where, report, exc)
    outcome.refused.append(f"{where}: still conflicting after {attempts} attempts")
    log.warning("report %s not written: still conflicting after %d attempts", where, attempts)


def _refused(outcome: WriteOutcome, where: str, report: Mapping[str, Any], exc: ApiException) -> None:
    size = len(json.dumps(report))
    annotations = (report.get("metadata") or {}).get("annotations") or {}
    cut = annotations.get(OMITTED, "nothing")
    why = f"HTTP {exc.status} {_message(exc)}"
    outcome.refused.append(f"{where}: {why}")
    if exc.status in (413, 422):
        log.warning("report %s refused (%s): %d bytes, %d results, already cut by the size cap: %s",
                    where, why, size, len(report.get("results") or []), cut)  # fmt: skip
    else:
        log.warning("report %s not written: %s", where, why)


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def write_reports(
    api: client.ApiClient, reports: Sequence[Mapping[str, Any]], report_api: str = "wgpolicyk8s.io/v1alpha2"
) -> WriteOutcome:
    """Write every report (of `report_api`); empty our earlier reports of that API this set no longer has."""
    outcome = WriteOutcome()
    wanted: set[tuple[str, str, str]] = set()
    for report in reports:
        meta = report.get("metadata") or {}
        wanted.add((_kind_of(report).kind, str(meta.get("namespace") or ""), str(meta.get("name"))))
        write_report(api, report, outcome)
    group = report_api.rpartition("/")[0]
    for kind in (k for k in kinds.REPORTS if k.group == group):
        try:
            earlier = _Reports(api, kind).ours()
        except ApiException as exc:
            if exc.status != 404:
                log.warning("listing earlier %s reports failed: HTTP %s", kind.kind, exc.status)
            continue
        for old in earlier:
            meta = old.get("metadata") or {}
            key = (kind.kind, str(meta.get("namespace") or ""), str(meta.get("name")))
            if key in wanted or not (old.get("results") or []):
                continue
            emptied = {**old, "results": [], "summary": {k: 0 for k in ("pass", "fail", "warn", "error", "skip")}}
            before = len(outcome.refused)
            write_report(api, emptied, WriteOutcome())
            if len(outcome.refused) == before:
                outcome.emptied.append(f"{key[1]}/{key[2]}" if key[1] else key[2])
    return outcome
