"""Evaluate one manifest: extract its crossings, decide each route, combine into one Decision.

`evaluate_manifest(manifest, decider, cluster, context)` is what `policyengine check`, the admission
webhook and the audit scan call. `context.observations` is what the cluster shows beyond the repo
(`policyengine.observed`; the live inventory's, or `observations_from_manifests` in `check`): the
labels of the object's namespace feed classification rules that match `namespace_labels`, and the
clusters observed to hold a service's endpoints are destination clusters together with services.yaml.

Every route the manifest creates is decided by the Decider (the rules); the object is allowed when
all routes are, rewritten to the permitted part when the enforcement is `rewrite` and the family can
narrow it, else denied with every violation. A manifest of the wrong shape raises `ManifestError` naming the JSON path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

import orjson

from policyengine.admission.extract import extractors_for
from policyengine.admission.extract.crossing import (
    ClusterDirectory,
    Crossing,
    ExtractionContext,
    Extractor,
    JsonPatch,
    PermittedClusters,
    RelatedIndex,
)
from policyengine.admission.extract.shape import (
    ManifestError,
    describe,
    group_of,
    metadata_map,
    name_of,
    namespace_of,
)
from policyengine.audit.rowformat import json_text
from policyengine.decide import new_decision_id
from policyengine.decision import ENFORCEMENT_STRENGTH, Decision, Enforcement, Outcome, Violation
from policyengine.observed import NOTHING_OBSERVED, Observations
from policyengine.route import DataProfile, Endpoint, Route

WARNING_LIMIT = 120


class ClassifyingPolicy(ClusterDirectory, Protocol):
    """What evaluation needs of the loaded policy: the cluster directory, classification, revision."""

    @property
    def revision(self) -> str: ...

    def classify(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        namespace_labels: Mapping[str, str] | None = None,
    ) -> DataProfile: ...


class RouteDecider(Protocol):
    """The Decider of `policyengine.decide` as evaluation uses it."""

    @property
    def policy(self) -> ClassifyingPolicy: ...

    def endpoint(self, cluster: str, workload: str | None = None, data: DataProfile = ...) -> Endpoint: ...

    def decide(self, route: Route, *, now: datetime | None = None) -> Decision: ...


@dataclass(frozen=True)
class EvaluationContext:
    """What else evaluation may look at: the other manifests applied together, the decision time, and
    what the cluster observes (namespace labels, the clusters holding each service's endpoints)."""

    manifests: Sequence[Mapping[str, Any]] = ()
    now: datetime | None = None
    observations: Observations = NOTHING_OBSERVED

    @cached_property
    def related(self) -> RelatedIndex:
        """`manifests` by kind, indexed once for every object evaluated with this context."""
        return RelatedIndex.of(self.manifests)

    @cached_property
    def services(self) -> dict[str, Mapping[str, Any]]:
        """The v1 Services among `manifests` by "namespace/name" (the first of each name wins)."""
        index: dict[str, Mapping[str, Any]] = {}
        for candidate in self.manifests:
            key = _service_key(candidate)
            if key is not None:
                index.setdefault(key, candidate)
        return index


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """One crossing and the decision the rules gave its route."""

    crossing: Crossing
    extractor: Extractor
    decision: Decision

    @property
    def allowed(self) -> bool:
        return self.decision.outcome is Outcome.ALLOW


def truncate(text: str, limit: int = WARNING_LIMIT) -> str:
    """`text` cut to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _service_key(candidate: Any) -> str | None:
    """ "namespace/name" of a v1 Service manifest, None for anything else."""
    if not isinstance(candidate, Mapping) or candidate.get("kind") != "Service" or group_of(candidate):
        return None
    try:
        return f"{namespace_of(candidate)}/{name_of(candidate)}"
    except ManifestError:
        return None


def _service_object(manifest: Mapping[str, Any], context: EvaluationContext, service: str) -> Mapping[str, Any] | None:
    """The v1 Service named `service`: the manifest itself, else one among the other manifests."""
    if _service_key(manifest) == service:
        return manifest
    return context.services.get(service)


def data_profile(
    policy: ClassifyingPolicy, manifest: Mapping[str, Any], context: EvaluationContext, service: str
) -> DataProfile:
    """The data `service` holds: its Service's annotations/labels (when given) and its namespace's
    observed labels through `policy.classify`."""
    namespace, _, name = service.partition("/")
    svc = _service_object(manifest, context, service)
    labels: Mapping[str, Any] = {}
    annotations: Mapping[str, Any] = {}
    if svc is not None:
        labels = metadata_map(svc, "labels")
        annotations = metadata_map(svc, "annotations")
    return policy.classify(
        namespace,
        name,
        {str(k): str(v) for k, v in labels.items()},
        {str(k): str(v) for k, v in annotations.items()},
        context.observations.labels_of(namespace),
    )


_DIGEST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _digest(manifest: Mapping[str, Any], cluster: str) -> str:
    """SHA-256 of the object and cluster as sorted-key compact UTF-8 JSON (orjson: a manifest is
    encoded on every review, about 4x faster than json.dumps). What orjson cannot write (a lone
    surrogate, an integer beyond 64 bits, deep nesting) is written by the audit row format's JSON
    (`rowformat.json_text`), so any object a request carries has a digest."""
    document = {"cluster": cluster, "manifest": manifest}
    try:
        canonical = orjson.dumps(document, option=_DIGEST_OPTIONS)
    except TypeError:
        canonical = json_text(document).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _strongest(enforcements: Sequence[Enforcement]) -> Enforcement:
    if not enforcements:
        return Enforcement.DENY
    return max(enforcements, key=lambda e: ENFORCEMENT_STRENGTH[e])


def _unique_violations(verdicts: Sequence[RouteVerdict]) -> list[Violation]:
    seen: dict[tuple[str, ...], Violation] = {}
    for v in verdicts:
        for violation in v.decision.violations:
            key = (
                violation.regime,
                violation.rule,
                violation.cluster,
                violation.message,
                violation.service,
                violation.source,
                violation.destination,
            )
            seen.setdefault(key, violation)
    return list(seen.values())


def _permitted(verdicts: Sequence[RouteVerdict], cluster: str) -> PermittedClusters:
    """Per service: far clusters whose every route is allowed, plus the local one when the rules permit it."""
    allowed: dict[str, set[str]] = {}
    refused: dict[str, set[str]] = {}
    common: dict[str, set[str]] = {}
    for v in verdicts:
        service = v.crossing.service
        (allowed if v.allowed else refused).setdefault(service, set()).add(v.crossing.far)
        clusters = set(v.decision.permitted_clusters)
        common[service] = common[service] & clusters if service in common else clusters
    by_service = {}
    for service in {v.crossing.service for v in verdicts}:
        keep = allowed.get(service, set()) - refused.get(service, set())
        if cluster in common.get(service, set()):
            keep.add(cluster)
        by_service[service] = frozenset(keep)
    refused_pairs = frozenset(_pair(v.crossing) for v in verdicts if not v.allowed)
    allowed_pairs = frozenset(_pair(v.crossing) for v in verdicts if v.allowed) - refused_pairs
    return PermittedClusters(by_service, refused_pairs, allowed_pairs)


def _pair(crossing: Crossing) -> tuple[str, str, str]:
    return (crossing.service, crossing.source, crossing.destination)


def evaluate_manifest(
    manifest: Mapping[str, Any],
    decider: RouteDecider,
    cluster: str,
    context: EvaluationContext | None = None,
) -> Decision:
    """One Decision for the object: allow, rewrite (with an RFC 6902 patch) or deny.

    Raises ManifestError when a field the extractors read has the wrong shape.
    """
    context = context or EvaluationContext()
    policy = decider.policy
    ctx = ExtractionContext(cluster, policy, context.related.without(manifest), context.observations)
    verdicts: list[RouteVerdict] = []
    profiles: dict[str, DataProfile] = {}
    for extractor in extractors_for(manifest):
        for crossing in extractor.extract(manifest, ctx):
            if crossing.service not in profiles:
                profiles[crossing.service] = data_profile(policy, manifest, context, crossing.service)
            route = Route(
                service=crossing.service,
                source=decider.endpoint(crossing.source),
                destination=decider.endpoint(
                    crossing.destination, workload=crossing.service, data=profiles[crossing.service]
                ),
                via=crossing.via,
            )
            verdicts.append(RouteVerdict(crossing, extractor, decider.decide(route, now=context.now)))
    return combine(manifest, ctx, policy.revision, verdicts, _engine_name(decider))


def _engine_name(decider: RouteDecider) -> str:
    engine = getattr(decider, "engine", None)
    return str(getattr(engine, "name", "")) if engine is not None else ""


def combine(
    manifest: Mapping[str, Any],
    ctx: ExtractionContext,
    revision: str,
    verdicts: Sequence[RouteVerdict],
    engine: str = "",
) -> Decision:
    """Combine the route decisions of one object into its Decision (see the module docstring)."""
    cluster = ctx.cluster
    notes = [truncate(n) for e in extractors_for(manifest) if e.notes for n in e.notes(manifest, ctx)]
    decisions = [v.decision for v in verdicts]
    refused = [v for v in verdicts if not v.allowed]
    regimes = tuple(sorted({r for d in decisions for r in d.regimes}))
    permitted = _permitted(verdicts, cluster)
    base: dict[str, Any] = {
        "decision_id": new_decision_id(),
        "policy_revision": decisions[0].policy_revision if decisions else revision,
        "engine": decisions[0].engine if decisions else engine,
        "latency_us": sum(d.latency_us for d in decisions),
        "regimes": regimes,
        "input_digest": _digest(manifest, cluster),
        "extra": {
            "object": describe(manifest),
            "cluster": cluster,
            "routes": [
                {
                    "service": v.crossing.service,
                    "source": v.crossing.source,
                    "destination": v.crossing.destination,
                    "via": v.crossing.via,
                    "known": v.crossing.known,
                    "outcome": v.decision.outcome.value,
                    "decision_id": v.decision.decision_id,
                }
                for v in verdicts
            ],
            "notes": notes,
        },
    }
    per_service = [set(clusters) for clusters in permitted.by_service.values()]
    all_permitted = tuple(sorted(set.intersection(*per_service))) if per_service else ()
    if not refused:
        return Decision(
            outcome=Outcome.ALLOW,
            enforcement=_strongest([d.enforcement for d in decisions]),
            violations=(),
            permitted_clusters=all_permitted,
            warnings=tuple(notes),
            **base,
        )
    enforcement = _strongest([v.decision.enforcement for v in refused])
    violations = _unique_violations(refused)
    families = {id(v.extractor): v.extractor for v in refused}
    if enforcement is Enforcement.REWRITE:
        plans = [e.rewrite(manifest, ctx, permitted) if e.rewrite else None for e in families.values()]
        if plans and all(plan is not None for plan in plans):
            patch: JsonPatch = [op for plan in plans if plan is not None for op in plan.patch]
            removed = [line for plan in plans if plan is not None for line in plan.removed]
            why = dict.fromkeys(f"{v.cluster or 'route'} refused by {v.regime} ({v.article})" for v in violations)
            return Decision(
                outcome=Outcome.REWRITE,
                enforcement=enforcement,
                violations=tuple(violations),
                permitted_clusters=all_permitted,
                patch=tuple(patch),
                warnings=tuple(truncate(w) for w in [*removed, *why, *notes]),
                **base,
            )
    remedies = [e.deny_remedy for e in families.values() if e.deny_remedy]
    if remedies:
        extra_remedy = "; ".join(dict.fromkeys(remedies))
        violations = [
            replace(v, remedy=f"{v.remedy}; or {extra_remedy}" if v.remedy else extra_remedy) for v in violations
        ]
    warnings: tuple[str, ...] = ()
    if enforcement in (Enforcement.WARN, Enforcement.DRYRUN):
        warnings = tuple(truncate(f"{v.article or v.regime}: {v.message}") for v in violations)
    warnings = (*warnings, *notes)
    return Decision(
        outcome=Outcome.DENY,
        enforcement=enforcement,
        violations=tuple(violations),
        permitted_clusters=all_permitted,
        warnings=warnings,
        **base,
    )
