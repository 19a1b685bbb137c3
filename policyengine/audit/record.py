"""What callers hand the writer: one decision with where it was taken and about what.

`AuditRecord` is the public input of `AuditWriter.record`; `content_of` turns it into the content
columns of a row in the row format (`rowformat`: time in UTC µs, regimes joined, text escaped where the
database could not hold it, the optional input with configured JSON paths masked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from policyengine.audit.rowformat import FORMAT, int_value, json_text, records_json, store_texts, strings_json
from policyengine.decision import Decision

Source = Literal["admission", "routing", "scan", "cli"]
SOURCES: tuple[str, ...] = ("admission", "routing", "scan", "cli")

MASK = "***"
# Paths whose values never reach the trail: Secret payloads and the requesting user's extra attributes.
DEFAULT_MASK_PATHS: tuple[str, ...] = (
    "request.object.data",
    "request.object.stringData",
    "request.oldObject.data",
    "request.oldObject.stringData",
    "request.userInfo.extra",
    "object.data",
    "object.stringData",
    "headers.authorization",
    "headers.cookie",
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision to record. Resource fields are for admission/scan/cli, route fields for routing."""

    source: Source
    decision: Decision
    cluster: str = ""
    operation: str = ""
    api_version: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    service: str = ""
    source_cluster: str = ""
    destination_cluster: str = ""
    dry_run: bool = False
    user: str = ""
    input: Any = None
    time: datetime | None = None  # defaults to the moment `record` is called

    @classmethod
    def for_manifest(
        cls,
        decision: Decision,
        manifest: Mapping[str, Any],
        *,
        source: Source = "cli",
        cluster: str = "",
        operation: str = "CREATE",
        user: str = "",
        dry_run: bool = False,
    ) -> AuditRecord:
        """A record for a decision about one Kubernetes object (apiVersion/kind/metadata read from it)."""
        meta = manifest.get("metadata") or {}
        namespace = str(meta.get("namespace", "") or "")
        name = str(meta.get("name", "") or "")
        service, source_cluster, destination_cluster = judged_route(decision, namespace, name, cluster)
        return cls(
            source=source,
            decision=decision,
            cluster=cluster,
            operation=operation,
            api_version=str(manifest.get("apiVersion", "")),
            kind=str(manifest.get("kind", "")),
            namespace=namespace,
            name=name,
            service=service,
            source_cluster=source_cluster,
            destination_cluster=destination_cluster,
            dry_run=dry_run,
            user=user,
        )


def judged_route(decision: Decision, namespace: str, name: str, cluster: str) -> tuple[str, str, str]:
    """(service, source cluster, destination cluster) of an object's row, from the routes it was judged on.

    An object can create several routes: the row names the refused ones when something was refused
    (else every route), each end as the distinct clusters joined by ","; the service is the routes' one
    service, or the object's namespace/name when they name several or none. An object that creates no
    route has no destination (its source is the cluster it was admitted in)."""
    routes = [r for r in decision.extra.get("routes") or () if isinstance(r, Mapping)]
    refused = {(v.service, v.source, v.destination) for v in decision.violations if v.destination}
    judged = [(str(r.get("service", "")), str(r.get("source", "")), str(r.get("destination", ""))) for r in routes]
    chosen = [r for r in judged if r in refused] or sorted(refused) or judged
    services = sorted({s for s, _, _ in chosen if s})
    fallback = f"{namespace}/{name}" if namespace and name else name
    service = services[0] if len(services) == 1 else fallback
    if not chosen:
        return service, cluster, ""
    sources = ",".join(sorted({src for _, src, _ in chosen if src}))
    destinations = ",".join(sorted({dst for _, _, dst in chosen if dst}))
    return service, sources, destinations


def mask(document: Any, paths: Sequence[str]) -> Any:
    """`document` with the value at each dotted path (`*` matches any key) replaced by MASK. Only the
    containers on a masked path are copied (the rest is shared, never changed), so any depth is fine."""
    if document is None or not paths:
        return document
    masked = document
    for path in paths:
        masked = _masked(masked, path.split("."))
    return masked


def _masked(node: Any, parts: list[str]) -> Any:
    """`node` with `parts` masked: a shallow copy of each container the path goes through."""
    if not parts:
        return MASK
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else ([head] if head in node else [])
        if not keys:
            return node
        copied = dict(node)
        for key in keys:
            copied[key] = _masked(node[key], rest)
        return copied
    if isinstance(node, list) and head == "*":
        return [_masked(item, rest) for item in node]
    return node


def canonical_json(value: Any) -> str:
    """The stored text of a structured value (`rowformat.json_text`)."""
    return json_text(value)


def content_of(record: AuditRecord, mask_paths: Sequence[str] = DEFAULT_MASK_PATHS) -> dict[str, Any]:
    """The content columns of the row for `record` (everything but chain_id, seq, prev_hash, hash), each
    as the row format stores it (`rowformat`): whatever values the record holds (an unknown `source` is
    the caller's bug and raises ValueError)."""
    if record.source not in SOURCES:
        raise ValueError(f"audit source {record.source!r} is not one of {', '.join(SOURCES)}")
    source = record.source
    d = record.decision
    when = record.time if isinstance(record.time, datetime) else datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return store_texts(
        {
            "time": when.astimezone(UTC),
            "decision_id": d.decision_id,
            "source": source,
            "cluster": record.cluster,
            "operation": record.operation,
            "api_version": record.api_version,
            "kind": record.kind,
            "namespace": record.namespace,
            "name": record.name,
            "service": record.service,
            "source_cluster": record.source_cluster,
            "destination_cluster": record.destination_cluster,
            "regimes": ",".join(sorted(set(map(str, d.regimes)))),
            "decision": d.outcome.value,
            "enforcement": d.enforcement.value,
            "violations": records_json(v.to_dict() for v in d.violations),
            "patch": json_text([dict(op) for op in d.patch]) if d.patch else "[]",
            "permitted_clusters": strings_json(d.permitted_clusters),
            "warnings": strings_json(d.warnings),
            "policy_revision": d.policy_revision,
            "engine": d.engine,
            "latency_us": int_value(d.latency_us),  # whole microseconds
            "dry_run": bool(record.dry_run),
            "user": record.user,
            "input_digest": d.input_digest,
            "input": None if record.input is None else json_text(mask(record.input, mask_paths)),
            "format": FORMAT,
        }
    )
