"""One result per (resource, rule): what a PolicyReport holds about an object's current state.

`results_of(decision, manifest_or_ref, cluster=..., timestamp=...)` turns one evaluation outcome into
results: one `pass` (rule `residency`) when the decision allowed, else one result per (regime, rule)
among its violations (violations of the same rule for several clusters are one result naming every
cluster), `fail` when enforced, `warn` when only warned, rewritten or dry-run. The webhook's scan,
`policyengine scan` and `policyengine audit export --format policyreport` all go through it, so a
result means the same wherever it is read.

`latest(results)` keeps the results of the newest evaluation of each resource: a report is the state
of each resource now, not its history (a rule the newest decision no longer violates is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from policyengine.decision import Decision, Outcome, Violation

ResultValue = Literal["pass", "fail", "warn", "error", "skip"]
RESULT_ORDER: tuple[str, ...] = ("fail", "error", "warn", "skip", "pass")  # kept first when a cap applies
SEVERITY = {"deny": "high", "rewrite": "medium", "warn": "low", "dryrun": "info"}
PASS_RULE = "residency"
PASS_MESSAGE = "every route of this object and its data stay where the policy permits"


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """The object a result is about. `kind` is "" for a route the runtime filter decided (no object)."""

    namespace: str
    kind: str
    api_version: str
    name: str
    uid: str | None = None

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ResourceRef:
        meta = manifest.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        uid = meta.get("uid")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            kind=str(manifest.get("kind") or ""),
            api_version=str(manifest.get("apiVersion") or ""),
            name=str(meta.get("name") or ""),
            uid=str(uid) if isinstance(uid, str) and uid else None,
        )


@dataclass(frozen=True, slots=True)
class ResourceResult:
    """One (resource, rule) result, in the fields a PolicyReport result has."""

    namespace: str
    kind: str
    api_version: str
    name: str
    uid: str | None
    rule: str
    result: ResultValue
    message: str
    severity: str  # high | medium | low | info; "" for a pass
    category: str  # the regime ("GDPR"), "none" for a pass of unregulated data
    properties: Mapping[str, str] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def policy(self) -> str:
        return f"policyengine-{self.category.lower()}"

    @property
    def resource_key(self) -> tuple[str, str, str, str, str]:
        """Which resource: (cluster, namespace, apiVersion, kind, name)."""
        return (self.properties.get("cluster", ""), self.namespace, self.api_version, self.kind, self.name)

    @property
    def key(self) -> tuple[str, ...]:
        """Which (resource, rule): a report holds one result per key."""
        return (*self.resource_key, self.policy, self.rule)


def _result_of(outcome: Outcome, enforcement: str, dry_run: bool) -> ResultValue:
    if outcome is Outcome.REWRITE:
        return "warn"  # refused as asked, admitted rewritten to the permitted clusters
    if dry_run or enforcement == "dryrun":
        return "skip" if outcome is Outcome.ALLOW else "warn"
    if enforcement == "warn":
        return "warn"
    return "fail"


def results_of(
    decision: Decision,
    resource: ResourceRef | Mapping[str, Any],
    *,
    cluster: str = "",
    timestamp: datetime | None = None,
    dry_run: bool = False,
    properties: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """The results of one decision about `resource` (an object's manifest, or its ResourceRef; see the
    module docstring)."""
    if not isinstance(resource, ResourceRef):
        resource = ResourceRef.of(resource)
    when = timestamp or datetime.now(UTC)
    base = {
        "cluster": cluster,
        "decision": decision.outcome.value,
        "decision_id": decision.decision_id,
        "policy_revision": decision.policy_revision,
        **(properties or {}),
    }
    if decision.permitted_clusters:
        base["permitted_clusters"] = ",".join(decision.permitted_clusters)
    base = {k: str(v) for k, v in base.items() if v}

    def result(
        rule: str, value: ResultValue, message: str, severity: str, category: str, extra: Mapping[str, str]
    ) -> ResourceResult:
        return ResourceResult(
            resource.namespace,
            resource.kind,
            resource.api_version,
            resource.name,
            resource.uid,
            rule,
            value,
            message,
            severity,
            category,
            {**base, **{k: v for k, v in extra.items() if v}},
            when,
        )

    if not decision.violations:
        category = decision.regimes[0] if decision.regimes else "none"
        return [result(PASS_RULE, "pass", PASS_MESSAGE, "", category, {"regimes": ",".join(decision.regimes)})]
    groups: dict[tuple[str, str], list[Violation]] = {}
    for violation in decision.violations:
        groups.setdefault((violation.regime, violation.rule), []).append(violation)
    out = []
    for (regime, rule), violations in sorted(groups.items()):
        first = violations[0]
        enforcement = first.enforcement or decision.enforcement.value
        clusters = sorted({v.cluster for v in violations if v.cluster})
        messages = list(dict.fromkeys(v.message for v in violations))
        message = " | ".join(messages)
        if first.article:
            message += f" [{first.article}]"
        if first.remedy:
            message += f" remedy: {first.remedy}"
        extra = {"article": first.article, "remedy": first.remedy, "violating_clusters": ",".join(clusters)}
        value = _result_of(decision.outcome, enforcement, dry_run)
        out.append(result(rule, value, message, SEVERITY.get(enforcement, "medium"), regime, extra))
    return out


def latest(results: Iterable[ResourceResult]) -> list[ResourceResult]:
    """The results of the newest evaluation of each resource, one per (resource, rule).

    An evaluation is its `decision_id` property; of two at the same time, the later in `results` wins."""
    newest: dict[tuple[str, ...], tuple[datetime, str]] = {}
    kept: dict[tuple[str, ...], dict[tuple[str, ...], ResourceResult]] = {}
    for r in results:
        resource = r.resource_key
        evaluation = (r.timestamp, r.properties.get("decision_id", ""))
        seen = newest.get(resource)
        if seen is None or evaluation[0] > seen[0] or (evaluation[0] == seen[0] and evaluation[1] != seen[1]):
            newest[resource] = evaluation
            kept[resource] = {r.key: r}
        elif evaluation == seen:
            kept[resource][r.key] = r
    return [r for by_rule in kept.values() for r in by_rule.values()]
