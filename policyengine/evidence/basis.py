"""The legal basis of a transfer, re-derived from the policy revision a decision names.

Rows name a policy revision (a content hash), not the policy itself, so the evidence is built with the
policy repos the DPO hands over (`--policy DIR`, repeatable; the bundled default repo otherwise): each is
loaded and hashed, and a row's basis is taken from the repo whose revision it names. Rows under a
revision none of them has are reported as such, never explained with another revision's facts.

The basis comes from the rules' own `explain` result for the route (the same steps `policyengine
explain` prints): per regime, whether the destination is in the regime's home, covered by an adequacy
decision (and its condition), by a recorded mechanism (id, type, expiry), or by a CCPA role/contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policyengine.decide import Decider
from policyengine.engine import make_engine
from policyengine.engine.base import EngineError
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies
from policyengine.route import DataProfile, Route

NOT_VALID = "0000-00-00"
FOREVER = "9999-12-31"


@dataclass(frozen=True, slots=True)
class Mechanism:
    """A recorded transfer mechanism that names a route's service and destination."""

    id: str
    type: str
    expires: str  # YYYY-MM-DD, "" when it never expires
    valid: bool  # valid on the day the basis was derived


@dataclass(frozen=True, slots=True)
class Basis:
    """What one regime says about one destination: `kind` is home, adequacy, mechanism, recipient
    (CCPA role or the business itself), not-regulated or none (nothing permits it)."""

    regime: str
    kind: str
    detail: str
    permitted: bool
    mechanisms: tuple[Mechanism, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.regime}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def _conditions(data: Mapping[str, Any], regime: str, cluster: str) -> list[str]:
    """The conditions of the adequacy decisions covering `cluster` (e.g. dpf_certified for the US)."""
    adequacy = ((data.get("regimes") or {}).get(regime) or {}).get("adequacy") or {}
    places = ((data.get("clusters") or {}).get(cluster) or {}).get("in") or ()
    return [str(adequacy[p]["condition"]) for p in places if p in adequacy and adequacy[p].get("condition")]


def _basis(check: dict[str, Any], conditions: list[str]) -> Basis:
    regime = str(check.get("regime", ""))
    facts = check.get("facts") or {}
    mechanisms = tuple(
        Mechanism(str(m.get("id", "")), str(m.get("type", "")), str(m.get("expires") or ""), bool(m.get("valid")))
        for m in check.get("mechanisms") or ()
    )
    permitted = bool(check.get("permitted"))
    valid = [m for m in mechanisms if m.valid]
    adequate = str(facts.get("adequate_until") or "")
    if facts.get("home"):
        return Basis(regime, "home", "inside the regime's home", permitted, mechanisms)
    if adequate and adequate != NOT_VALID:
        parts = [f"condition {c} met by the recipient" for c in conditions]
        if adequate != FOREVER:
            parts.append(f"until {adequate}")
        return Basis(regime, "adequacy", "; ".join(parts), permitted, mechanisms)
    if valid:
        detail = ", ".join(f"{m.id} ({m.type}, expires {m.expires or 'never'})" for m in valid)
        return Basis(regime, "mechanism", detail, permitted, mechanisms)
    if regime == "CCPA" and permitted:
        role = facts.get("role")
        detail = (
            f"recipient role {role}, contract until {facts.get('contract_until')}" if role else "the business itself"
        )
        return Basis(regime, "recipient", detail, permitted, mechanisms)
    if permitted:
        return Basis(regime, "permitted", "", permitted, mechanisms)
    why = []
    if facts.get("unmet_condition"):
        why.append(f"adequacy condition {facts['unmet_condition']} not met")
    expired = [m for m in mechanisms if not m.valid]
    if expired:
        why.append("expired: " + ", ".join(f"{m.id} ({m.expires})" for m in expired))
    return Basis(regime, "none", "; ".join(why) or "no home, adequacy or mechanism", permitted, mechanisms)


class PolicyBook:
    """The policy repos given, by revision, each with a decider to explain routes under it."""

    def __init__(self, policies: Iterable[LoadedPolicy] = ()) -> None:
        self.deciders: dict[str, Decider] = {}
        for policy in list(policies) or [load_policy(default_policies())]:
            self.deciders.setdefault(policy.revision, Decider(policy, make_engine("regorus")))
        self._bases: dict[tuple[str, str, str, str, str], tuple[Basis, ...]] = {}
        self._profiles: dict[tuple[str, str], DataProfile] = {}

    @property
    def newest(self) -> Decider:
        return next(iter(self.deciders.values()))

    def decider(self, revision: str) -> Decider | None:
        return self.deciders.get(revision)

    def regimes(self) -> set[str]:
        return {str(r) for d in self.deciders.values() for r in (d.policy.data.get("regimes") or {})}

    def clusters(self) -> set[str]:
        return {c for d in self.deciders.values() for c in d.policy.cluster_names()}

    def profile(self, revision: str, service: str) -> DataProfile:
        decider = self.deciders.get(revision) or self.newest
        key = (decider.revision, service)
        if key not in self._profiles:
            namespace, _, name = service.partition("/")
            self._profiles[key] = decider.policy.classify(namespace, name) if name else DataProfile()
        return self._profiles[key]

    def country(self, cluster: str, revision: str = "") -> str:
        decider = self.deciders.get(revision) or self.newest
        info = decider.policy.cluster_info(cluster)
        return info.jurisdiction if info is not None else "unknown"

    def bases(self, revision: str, service: str, source: str, destination: str, day: str) -> tuple[Basis, ...]:
        """Per regime of the route's data, the basis for `destination` on `day` under `revision`
        (empty when that revision is not among the repos given or the route moves no regulated data)."""
        key = (revision, service, source, destination, day)
        if key in self._bases:
            return self._bases[key]
        decider = self.deciders.get(revision)
        found: tuple[Basis, ...] = ()
        if decider is not None:
            profile = self.profile(revision, service)
            route = Route(
                service,
                decider.endpoint(source),
                decider.endpoint(destination, workload=service, data=profile),
                via="policyengine evidence",
            )
            moment = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC) if day else datetime.now(UTC)
            try:
                steps = decider.explain(route, now=moment)
            except EngineError:
                steps = {}
            data = decider.policy.data
            found = tuple(
                _basis(check, _conditions(data, str(check.get("regime", "")), destination))
                for check in steps.get("checks") or ()
                if check.get("cluster") == destination
            )
        self._bases[key] = found
        return found

    def explain(
        self, revision: str, service: str, source: str, destination: str, when: datetime, workload: str = ""
    ) -> dict[str, Any]:
        """The explain steps of one route under `revision`, the caller classified as `workload`
        ("namespace/name") when the row names one (raises KeyError when not given, EngineError)."""
        decider = self.deciders[revision]
        profile = self.profile(revision, service)
        caller = workload if "/" in workload else None
        route = Route(
            service,
            decider.endpoint(source, workload=caller, data=self.profile(revision, caller) if caller else None),
            decider.endpoint(destination, workload=service, data=profile),
            via="policyengine explain",
        )
        return decider.explain(route, now=when)
