"""What if: decide the same objects under the current policy and under a candidate, and list what flips.

`simulate(objects, before, after)` decides every object of each `ClusterObjects` (a cluster, its
manifests, what it observes) under two `Scenario`s (a decider, i.e. a policy on an engine, and a
decision time) and returns a `Flip` for each object whose outcome, or one of whose routes, differs.
`Flip.newly_denied` is an object that was admitted (allowed or rewritten) and would now be refused:
what a policy repo's CI gates on. `policyengine simulate` (cli/simulate.py) reads manifest
directories; `policyengine.k8s` passes the objects of live clusters.

Candidates that are not a whole policy directory are built as a copy of the current one
(`candidate_repo`): a cluster added to clusters.yaml, or a cluster removed from clusters.yaml together
with the places that name it (its services.yaml placements and the transfers.yaml mechanisms to it),
so the candidate loads and is checked by the same loader as any repo. A candidate time decides the
"after" at that moment (a mechanism or adequacy that has expired by then no longer covers a route).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from policyengine.admission.evaluate import EvaluationContext, RouteDecider, evaluate_manifest
from policyengine.admission.extract import extractors_for
from policyengine.decision import Decision, Outcome, Violation
from policyengine.observed import NOTHING_OBSERVED, Observations

RouteKey = tuple[str, str, str, str]  # (service, source, destination, via)


@dataclass(frozen=True)
class ClusterObjects:
    """The objects of one cluster to decide: where each came from (`sources[i]`, e.g. "file.yaml:3" or
    "context eu-1"; default its position), and what the cluster observes."""

    cluster: str
    manifests: Sequence[Mapping[str, Any]]
    observations: Observations = NOTHING_OBSERVED
    sources: Sequence[str] = ()

    def source_of(self, index: int) -> str:
        return self.sources[index] if index < len(self.sources) else f"{self.cluster}[{index}]"


@dataclass(frozen=True)
class Scenario:
    """A policy on an engine (`decider`) and the moment to decide at (None: now)."""

    decider: RouteDecider
    now: datetime | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class RouteFlip:
    """One route whose outcome differs; `before`/`after` is "" when the route does not exist there (a
    route that only one side has is a flip only when that side refuses it).
    `violations` are what makes the difference: those of the refusing side that the other side lacks."""

    service: str
    source: str
    destination: str
    via: str
    before: str
    after: str
    violations: tuple[Violation, ...] = ()


@dataclass(frozen=True)
class Flip:
    """One object decided differently under the two scenarios."""

    cluster: str
    source: str
    manifest: Mapping[str, Any]
    before: Decision
    after: Decision
    routes: tuple[RouteFlip, ...] = ()
    violations: tuple[Violation, ...] = field(default=())  # after's violations that before lacks, or the reverse

    @property
    def newly_denied(self) -> bool:
        """Admitted before (allowed or rewritten), refused after."""
        return not self.before.enforced and self.after.enforced

    @property
    def newly_allowed(self) -> bool:
        return self.before.enforced and not self.after.enforced

    @property
    def resource(self) -> str:
        meta = self.manifest.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return f"{self.manifest.get('kind', '?')} {meta.get('namespace') or 'default'}/{meta.get('name', '?')}"


def _violation_key(v: Violation) -> tuple[str, str, str]:
    return (v.regime, v.rule, v.cluster)


def _difference(refusing: Sequence[Violation], other: Sequence[Violation]) -> tuple[Violation, ...]:
    known = {_violation_key(v) for v in other}
    return tuple(v for v in refusing if _violation_key(v) not in known)


def _routes(decision: Decision) -> dict[RouteKey, str]:
    out: dict[RouteKey, str] = {}
    for route in decision.extra.get("routes", ()):
        key = (str(route["service"]), str(route["source"]), str(route["destination"]), str(route["via"]))
        out[key] = str(route["outcome"])
    return out


def _route_flips(before: Decision, after: Decision) -> tuple[RouteFlip, ...]:
    old, new = _routes(before), _routes(after)
    flips = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key, ""), new.get(key, "")
        if was == now or {was, now} == {"", Outcome.ALLOW.value}:
            continue  # unchanged, or an allowed route that only one side has
        service, source, destination, via = key
        ends = {source, destination}
        refused_after = now not in ("", Outcome.ALLOW.value)
        refusing, other = (after, before) if refused_after else (before, after)
        why = tuple(v for v in _difference(refusing.violations, other.violations) if v.cluster in ends)
        if not why:
            why = tuple(v for v in refusing.violations if v.cluster in ends)
        flips.append(RouteFlip(service, source, destination, via, was, now, why))
    return tuple(flips)


def compare(cluster: str, source: str, manifest: Mapping[str, Any], before: Decision, after: Decision) -> Flip | None:
    """The Flip of one object decided twice, or None when nothing differs."""
    routes = _route_flips(before, after)
    if before.outcome is after.outcome and before.enforced == after.enforced and not routes:
        return None
    if after.enforced or (after.outcome is not Outcome.ALLOW and before.outcome is Outcome.ALLOW):
        why = _difference(after.violations, before.violations)
    else:
        why = _difference(before.violations, after.violations)
    return Flip(cluster, source, manifest, before, after, routes, why)


def decide(objects: ClusterObjects, scenario: Scenario) -> list[Decision | None]:
    """The decision of each manifest under `scenario` (None for one of a kind that creates no route).

    Raises ManifestError for a manifest of the wrong shape."""
    context = EvaluationContext(manifests=objects.manifests, now=scenario.now, observations=objects.observations)
    return [
        evaluate_manifest(m, scenario.decider, objects.cluster, context) if extractors_for(m) else None
        for m in objects.manifests
    ]


def simulate(objects: Sequence[ClusterObjects], before: Scenario, after: Scenario) -> list[Flip]:
    """Every object whose decision differs between `before` and `after`, in input order."""
    flips = []
    for group in objects:
        for index, (manifest, old, new) in enumerate(
            zip(group.manifests, decide(group, before), decide(group, after), strict=True)
        ):
            if old is None or new is None:
                continue
            flip = compare(group.cluster, group.source_of(index), manifest, old, new)
            if flip is not None:
                flips.append(flip)
    return flips


# candidate repos


@dataclass(frozen=True, slots=True)
class NewCluster:
    """A cluster to add: its name, provider region (regions.yaml) and entity (entities.yaml)."""

    name: str
    region: str
    entity: str


class CandidateError(ValueError):
    """A candidate that cannot be built (what and how to fix it)."""


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise CandidateError(f"{path}: not a mapping; fix the file first (policyengine policy lint)")
    return document


def _dump(path: Path, document: Mapping[str, Any], what: str) -> None:
    path.write_text(f"# {what} (written by policyengine simulate)\n" + yaml.safe_dump(dict(document), sort_keys=False))


def _destination_cluster(transfer: Any) -> str | None:
    destination = transfer.get("destination") if isinstance(transfer, dict) else None
    return destination.get("cluster") if isinstance(destination, dict) else None


def candidate_repo(current: Path, into: Path, *, add: Sequence[NewCluster] = (), remove: Sequence[str] = ()) -> Path:
    """A copy of the policy repo `current` in `into` with clusters added and removed (see the module
    docstring). Raises CandidateError for a cluster added twice or removed but not declared."""
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(current, into)
    clusters_path = into / "clusters.yaml"
    clusters = _load(clusters_path)
    entries = [c for c in clusters.get("clusters") or [] if isinstance(c, dict)]
    names = {str(c.get("name")) for c in entries}
    for name in remove:
        if name not in names:
            raise CandidateError(
                f"--remove-cluster {name!r}: clusters.yaml declares no such cluster (known: {', '.join(sorted(names))})"
            )
    for new in add:
        if new.name in names and new.name not in remove:
            raise CandidateError(f"--add-cluster {new.name!r}: clusters.yaml already declares it; choose another name")
    entries = [c for c in entries if str(c.get("name")) not in set(remove)]
    entries.extend({"name": c.name, "region": c.region, "entity": c.entity} for c in add)
    _dump(clusters_path, {**clusters, "clusters": entries}, "candidate clusters")
    if remove:
        gone = set(remove)
        services_path = into / "services.yaml"
        services = _load(services_path)
        if services:
            kept = []
            for s in services.get("services") or []:
                if isinstance(s, dict):
                    s = {**s, "clusters": [c for c in s.get("clusters") or [] if c not in gone]}
                kept.append(s)
            _dump(services_path, {**services, "services": kept}, "candidate services")
        transfers_path = into / "transfers.yaml"
        transfers = _load(transfers_path)
        if transfers:
            kept = [
                t
                for t in transfers.get("transfers") or []
                if not (
                    isinstance(t, dict)
                    and isinstance(t.get("destination"), dict)
                    and t["destination"].get("cluster") in gone
                )
            ]
            _dump(transfers_path, {**transfers, "transfers": kept}, "candidate transfers")
    return into
