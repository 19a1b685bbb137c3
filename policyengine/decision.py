"""Decisions: what the rules answered for a route or a manifest, with the evidence to re-derive it."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REWRITE = "rewrite"


class Enforcement(enum.StrEnum):
    """What a violated regime does, per namespace (Gatekeeper enforcement actions plus rewrite)."""

    DENY = "deny"
    REWRITE = "rewrite"
    WARN = "warn"
    DRYRUN = "dryrun"


ENFORCEMENT_STRENGTH = {Enforcement.DRYRUN: 0, Enforcement.WARN: 1, Enforcement.REWRITE: 2, Enforcement.DENY: 3}


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule hit: which regime and rule, the article it rests on, what happened and the way out."""

    regime: str
    rule: str
    article: str
    message: str
    remedy: str
    cluster: str = ""  # the end of the route that is not permitted
    enforcement: str = "deny"
    # The route judged (set by the decider, not the rules): the destination service, the caller's
    # cluster and the cluster of the service's endpoints, so a row names the route each hit is about.
    service: str = ""
    source: str = ""
    destination: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {
            "regime": self.regime,
            "rule": self.rule,
            "article": self.article,
            "message": self.message,
            "remedy": self.remedy,
            "cluster": self.cluster,
            "enforcement": self.enforcement,
        }
        if self.service or self.source or self.destination:
            out.update(service=self.service, source=self.source, destination=self.destination)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Violation:
        return cls(
            regime=str(raw.get("regime", "")),
            rule=str(raw.get("rule", "")),
            article=str(raw.get("article", "")),
            message=str(raw.get("message", "")),
            remedy=str(raw.get("remedy", "")),
            cluster=str(raw.get("cluster", "")),
            enforcement=str(raw.get("enforcement", "deny")),
            service=str(raw.get("service", "")),
            source=str(raw.get("source", "")),
            destination=str(raw.get("destination", "")),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one route or one manifest.

    `outcome` is what the rules found (allow, deny, or rewrite to `permitted_clusters`); `enforcement` is
    what to do about a violation (deny refuses, warn and dryrun let it through). `enforced` says whether a
    caller must refuse.
    """

    decision_id: str
    outcome: Outcome
    enforcement: Enforcement
    violations: tuple[Violation, ...]
    permitted_clusters: tuple[str, ...]
    policy_revision: str
    engine: str
    latency_us: float
    regimes: tuple[str, ...] = ()
    patch: tuple[dict[str, Any], ...] = ()  # RFC 6902 operations of a rewrite
    warnings: tuple[str, ...] = ()
    input_digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        """True when the caller must refuse the route or object."""
        return self.outcome is Outcome.DENY and self.enforcement in (Enforcement.DENY, Enforcement.REWRITE)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["outcome"] = self.outcome.value
        raw["enforcement"] = self.enforcement.value
        return raw
