"""What callers hand the writer: one decision with where it was taken and about what.

`AuditRecord` is the public input of `AuditWriter.record`; `content_of` turns it into the content
columns of a row (time in UTC µs, regimes joined, the optional input with configured JSON paths masked).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

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
        return cls(
            source=source,
            decision=decision,
            cluster=cluster,
            operation=operation,
            api_version=str(manifest.get("apiVersion", "")),
            kind=str(manifest.get("kind", "")),
            namespace=str(meta.get("namespace", "") or ""),
            name=str(meta.get("name", "") or ""),
            dry_run=dry_run,
            user=user,
        )


def mask(document: Any, paths: Sequence[str]) -> Any:
    """A copy of `document` with the value at each dotted path (`*` matches any key) replaced by MASK."""
    if document is None or not paths:
        return document
    masked = copy.deepcopy(document)
    for path in paths:
        _mask_path(masked, path.split("."))
    return masked


def _mask_path(node: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else ([head] if head in node else [])
        for key in keys:
            if rest:
                _mask_path(node[key], rest)
            else:
                node[key] = MASK
    elif isinstance(node, list) and head == "*":
        for index, item in enumerate(node):
            if rest:
                _mask_path(item, rest)
            else:
                node[index] = MASK


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The stored text of a structured value: sorted keys, no whitespace, UTF-8 (no ASCII escapes)."""
    if not value and isinstance(value, list):
        return "[]"
    return _CANONICAL.encode(value)


def _strings_json(values: Sequence[str]) -> str:
    """`canonical_json` of a list of strings, through orjson (the same bytes: it escapes every code point
    as json.dumps does, a test checks it) when every item is a str."""
    if not values:
        return "[]"
    if all(type(v) is str for v in values):
        return orjson.dumps(list(values)).decode()
    return canonical_json(list(values))


def _violations_json(violations: Sequence[Mapping[str, Any]]) -> str:
    """`canonical_json` of violation dicts (string values), through orjson when every value is a str."""
    if not violations:
        return "[]"
    if all(type(v) is str for violation in violations for v in violation.values()):
        return orjson.dumps(list(violations), option=orjson.OPT_SORT_KEYS).decode()
    return canonical_json(list(violations))


def content_of(record: AuditRecord, mask_paths: Sequence[str] = DEFAULT_MASK_PATHS) -> dict[str, Any]:
    """The content columns of the row for `record` (everything but chain_id, seq, prev_hash, hash)."""
    if record.source not in SOURCES:
        raise ValueError(f"audit source {record.source!r} is not one of {', '.join(SOURCES)}")
    d = record.decision
    when = record.time or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return {
        "time": when.astimezone(UTC),
        "decision_id": d.decision_id,
        "source": record.source,
        "cluster": record.cluster,
        "operation": record.operation,
        "api_version": record.api_version,
        "kind": record.kind,
        "namespace": record.namespace,
        "name": record.name,
        "service": record.service,
        "source_cluster": record.source_cluster,
        "destination_cluster": record.destination_cluster,
        "regimes": ",".join(sorted(set(d.regimes))),
        "decision": d.outcome.value,
        "enforcement": d.enforcement.value,
        "violations": _violations_json([v.to_dict() for v in d.violations]),
        "patch": canonical_json([dict(op) for op in d.patch]),
        "permitted_clusters": _strings_json(d.permitted_clusters),
        "warnings": _strings_json(d.warnings),
        "policy_revision": d.policy_revision,
        "engine": d.engine,
        "latency_us": round(d.latency_us),  # whole microseconds
        "dry_run": bool(record.dry_run),
        "user": record.user,
        "input_digest": d.input_digest,
        "input": None if record.input is None else canonical_json(mask(record.input, mask_paths)),
    }
