"""The scan: list every object of every crossing kind in a cluster and decide it as if admitted now.

`scan_cluster(api, decider, cluster)` is what the background scan of `serve --scan-interval` and the
`policyengine scan` command both run. It lists each kind of `kinds.SCAN` the API server serves (paged;
a kind whose CRD is not installed is skipped and named in `not_served`), then decides each object
with `evaluate_manifest`, as the webhook would: the objects of its namespace and every ReferenceGrant
are the objects applied with it, and the observations are the inventory's (in `serve`) or read from
the same cluster by one list of the inventory's kinds (`policyengine scan`). An object whose fields
have the wrong shape is an error result, not a stop.

`Scanner` runs it in the background: one thread per worker that, while it holds the scan Lease
(`lease.py`), scans every `interval`, records each decision as an audit row (source `scan`, dry-run:
nothing was admitted or refused), writes the reports (`reports_writer.py`) and sets the scan metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from policyengine.admission.evaluate import EvaluationContext, RouteDecider, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.shape import ManifestError
from policyengine.admission.observations import observations_from_manifests
from policyengine.decision import Decision
from policyengine.k8s import kinds
from policyengine.k8s.kinds import Kind
from policyengine.k8s.listing import Discovery, list_all
from policyengine.observed import Observations
from policyengine.reports import ReportApi, ResourceRef, ResourceResult, build_reports, results_of

log = logging.getLogger("policyengine.scan")
ScanDecider = RouteDecider


@dataclass(frozen=True)
class ScannedObject:
    """One decided object: the manifest as listed and its decision (or why it could not be decided)."""

    manifest: Mapping[str, Any]
    decision: Decision | None
    error: str | None = None

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef.of(self.manifest)


@dataclass(frozen=True)
class ClusterScan:
    """What one scan of one cluster found."""

    cluster: str
    objects: list[ScannedObject]
    not_served: list[str]
    listed: dict[str, int]
    started: datetime
    seconds: float

    @property
    def decided(self) -> list[ScannedObject]:
        return [o for o in self.objects if o.decision is not None]

    @property
    def errors(self) -> list[ScannedObject]:
        return [o for o in self.objects if o.decision is None]

    def results(self, *, dry_run: bool = False) -> list[ResourceResult]:
        """The report results of every decided object (and an `error` result for each that was not)."""
        out: list[ResourceResult] = []
        for o in self.objects:
            if o.decision is not None:
                out.extend(results_of(o.decision, o.ref, cluster=self.cluster, timestamp=self.started, dry_run=dry_run))
            else:
                out.append(_error_result(o, self.cluster, self.started))
        return out


def _error_result(o: ScannedObject, cluster: str, when: datetime) -> ResourceResult:
    ref = o.ref
    return ResourceResult(
        namespace=ref.namespace,
        kind=ref.kind,
        api_version=ref.api_version,
        name=ref.name,
        uid=ref.uid,
        rule="shape",
        result="error",
        message=o.error or "could not be decided",
        severity="high",
        category="none",
        properties={"cluster": cluster},
        timestamp=when,
    )


def list_kinds(
    api: client.ApiClient, wanted: Sequence[Kind], *, page_size: int = 500
) -> tuple[dict[Kind, list[dict[str, Any]]], list[str]]:
    """Every object of each served kind of `wanted`, and the labels of those not served."""
    discovery = Discovery(api)
    found: dict[Kind, list[dict[str, Any]]] = {}
    not_served: list[str] = []
    for kind in wanted:
        version = discovery.version(kind)
        if version is None:
            not_served.append(kind.label)
            continue
        try:
            selector = kinds.SELECTORS.get(kind)
            found[kind] = list_all(api, kind, version, page_size=page_size, label_selector=selector).items
        except ApiException as exc:
            if exc.status != 404:
                raise
            not_served.append(kind.label)
    return found, not_served


def observe(
    api: client.ApiClient, cluster: str, cluster_by_fsm_key: Callable[[str], str | None], *, page_size: int = 500
) -> Observations:
    """What the cluster observes, read once (the inventory's kinds, through the parsers `check` uses)."""
    listed, _ = list_kinds(api, kinds.INVENTORY, page_size=page_size)
    objects = [o for items in listed.values() for o in items]
    return observations_from_manifests(objects, cluster=cluster, cluster_by_fsm_key=cluster_by_fsm_key)


def scan_cluster(
    api: client.ApiClient,
    decider: ScanDecider,
    cluster: str,
    *,
    observations: Observations | None = None,
    now: datetime | None = None,
    page_size: int = 500,
    keep_alive: Callable[[], bool] | None = None,
) -> ClusterScan:
    """List and decide every crossing object of the cluster (see the module docstring).

    `keep_alive` is called every few hundred objects; when it answers False the scan stops (a lost
    Lease) and raises ScanAborted. Raises ApiException or urllib3 errors when the cluster cannot be read.
    """
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    listed, not_served = list_kinds(api, kinds.SCAN, page_size=page_size)
    if observations is None:
        observations = observe(api, cluster, decider.policy.cluster_by_fsm_key, page_size=page_size)
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    grants: list[dict[str, Any]] = listed.get(kinds.REFERENCE_GRANT, [])
    for items in listed.values():
        for obj in items:
            by_namespace.setdefault(_namespace(obj), []).append(obj)
    scanned: list[ScannedObject] = []
    for namespace, members in sorted(by_namespace.items()):
        together = members + [g for g in grants if _namespace(g) != namespace]
        context = EvaluationContext(manifests=together, now=now, observations=observations)
        for obj in members:
            if not extractors_for(obj):
                continue
            try:
                scanned.append(ScannedObject(obj, evaluate_manifest(obj, decider, cluster, context)))
            except ManifestError as exc:
                scanned.append(ScannedObject(obj, None, str(exc)))
            if keep_alive is not None and len(scanned) % 250 == 0 and not keep_alive():
                raise ScanAborted(f"scan of {cluster} stopped after {len(scanned)} objects: the scan Lease was lost")
    counts = {k.label: len(v) for k, v in listed.items()}
    return ClusterScan(cluster, scanned, not_served, counts, started, time.perf_counter() - clock)


class ScanAborted(Exception):
    """The scan stopped before its end (the Lease was lost)."""


def _namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""


# -- the background scan ----------------------------------------------------------------------------
@dataclass
class ScanSettings:
    cluster: str
    interval_seconds: float
    report_api: ReportApi
    report_cap_bytes: int
    audit_url: str
    audit_spool_dir: str | None
    audit_timeout_seconds: float


@dataclass
class Scanner:
    """The background scan of one worker (see the module docstring). Its thread owns its engine, its
    audit writer and its Lease elector; the event loop only reads `last` (replaced whole)."""

    api: client.ApiClient
    settings: ScanSettings
    elector: Any  # lease.LeaseElector
    decider_for: Callable[[], ScanDecider | None]
    observations: Callable[[], Observations]
    last: ScanReport | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Scanner:
        self._thread = threading.Thread(target=self._run, name="scanner", daemon=True)
        self._thread.start()
        return self

    def stop(self, seconds: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(seconds)

    def _run(self) -> None:
        from policyengine.audit.writer import AuditWriter
        from policyengine.k8s import metrics

        writer: AuditWriter | None = None
        next_scan = time.monotonic()
        leading = False
        try:
            while not self._stopping.is_set():
                try:
                    leading = bool(self.elector.try_acquire_or_renew())
                except (ApiException, HTTPError, OSError) as exc:
                    log.warning("scan lease: %s", exc)
                    leading = False
                metrics.SCAN_LEADER.set(1 if leading else 0)
                if leading and time.monotonic() >= next_scan:
                    decider = self.decider_for()
                    if decider is not None and self.observations().synced:
                        if writer is None:
                            writer = self._writer()
                        self.last = self._scan_once(decider, writer)
                        next_scan = time.monotonic() + self.settings.interval_seconds
                wait = self.elector.renew_every if leading else self.elector.retry_every
                self._stopping.wait(max(0.05, min(wait, next_scan - time.monotonic()) if leading else wait))
        finally:
            if leading:
                try:
                    self.elector.release()
                except (ApiException, HTTPError, OSError):
                    log.info("scan lease: not released (it expires by itself)")
            metrics.SCAN_LEADER.set(0)
            if writer is not None:
                writer.close()

    def _writer(self) -> Any:
        from policyengine.audit.writer import AuditWriter

        chain = f"{self.settings.cluster}-scan-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return AuditWriter.open(
            self.settings.audit_url,
            chain_id=chain,
            spool_dir=self.settings.audit_spool_dir,
            new_chain=True,
            timeout_s=self.settings.audit_timeout_seconds,
        )

    def _scan_once(self, decider: ScanDecider, writer: Any) -> ScanReport | None:
        from policyengine.k8s.reports_writer import write_reports

        try:
            scan = scan_cluster(
                self.api,
                decider,
                self.settings.cluster,
                observations=self.observations(),
                keep_alive=self.elector.try_acquire_or_renew,
            )
        except ScanAborted as exc:
            log.warning("%s", exc)
            return None
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("scan of %s failed: %s; next at the next interval", self.settings.cluster, exc)
            return None
        record_scan(writer, scan)
        reports = build_reports(
            scan.results(),
            api=self.settings.report_api,
            cap_bytes=self.settings.report_cap_bytes,
            generated_at=scan.started,
        )
        written = write_reports(self.api, reports, self.settings.report_api)
        report = ScanReport.of(scan, written.summary)
        report.export_metrics()
        log.info("scan of %s: %s", self.settings.cluster, report.summary)
        return report


def record_scan(writer: Any, scan: ClusterScan) -> int:
    """One audit row per decided object: source `scan`, dry-run (the scan admits and refuses nothing)."""
    from policyengine.audit.record import AuditRecord

    count = 0
    for o in scan.decided:
        assert o.decision is not None
        writer.record(
            AuditRecord.for_manifest(
                o.decision, o.manifest, source="scan", cluster=scan.cluster, operation="SCAN", dry_run=True,
                user="policyengine-scan",
            )
        )  # fmt: skip
        count += 1
    return count


@dataclass(frozen=True)
class ScanReport:
    """The figures of one finished scan (what the metrics and logs say)."""

    cluster: str
    seconds: float
    objects: dict[str, int]
    violations: dict[tuple[str, str], int]
    errors: int
    reports: str

    @classmethod
    def of(cls, scan: ClusterScan, reports: str) -> ScanReport:
        objects: dict[str, int] = {}
        violations: dict[tuple[str, str], int] = {}
        for o in scan.objects:
            label = str(o.manifest.get("kind", ""))
            objects[label] = objects.get(label, 0) + 1
            if o.decision is not None:
                for v in o.decision.violations:
                    key = (v.regime, o.decision.enforcement.value)
                    violations[key] = violations.get(key, 0) + 1
        return cls(scan.cluster, scan.seconds, objects, violations, len(scan.errors), reports)

    @property
    def summary(self) -> str:
        violations = sum(self.violations.values())
        return (
            f"{sum(self.objects.values())} objects in {self.seconds:.1f}s, {violations} violation(s), "
            f"{self.errors} error(s); reports: {self.reports}"
        )

    def export_metrics(self) -> None:
        from policyengine.k8s import metrics

        metrics.SCAN_DURATION.observe(self.seconds)
        for kind, count in self.objects.items():
            metrics.SCAN_OBJECTS.labels(kind).inc(count)
        metrics.SCAN_VIOLATIONS.clear()
        for (regime, enforcement), count in self.violations.items():
            metrics.SCAN_VIOLATIONS.labels(regime, enforcement).set(count)
