"""The transfer record (GDPR Art. 30(1)(e), 44-49; PIPL Art. 38-40, 55): per service, the data it
holds, every destination country and cluster it was routed to (or asked for) in the period, the basis
of each transfer under each regime, and how many requests were allowed, rewritten and refused.

It is derived from the trail's route groups (`audit.aggregates`, one row per route, decision, revision
and day) and the policy revision(s) they name (`basis.PolicyBook`). It also lists the mechanisms that
expire soon, and those that had expired while traffic still asked for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from policyengine.audit.aggregates import Group
from policyengine.evidence.basis import Basis, PolicyBook

DEFAULT_EXPIRING_DAYS = 90


@dataclass(slots=True)
class Destination:
    """One destination cluster of a service, and the transfers toward it in the period."""

    cluster: str
    country: str  # the jurisdiction of the cluster in the policy ("unknown" when it declares none)
    sources: set[str] = field(default_factory=set)
    bases: dict[str, Basis] = field(default_factory=dict)  # regime -> basis (newest revision seen)
    allowed: int = 0
    rewritten: int = 0
    refused: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def see(self, group: Group) -> None:
        if group.decision == "allow":
            self.allowed += group.rows
        elif group.decision == "rewrite":
            self.rewritten += group.rows
        else:
            self.refused += group.rows
        self.first = group.first if self.first is None else min(self.first, group.first)
        self.last = group.last if self.last is None else max(self.last, group.last)

    @property
    def basis_text(self) -> str:
        return "; ".join(b.label for b in self.bases.values()) or "no regulated data moved"


@dataclass(slots=True)
class ServiceTransfers:
    service: str
    data_classes: tuple[str, ...]
    subjects: tuple[str, ...]
    regimes: tuple[str, ...]
    destinations: dict[str, Destination] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MechanismUse:
    """A mechanism on a route of the record: when it expires and how much traffic came after that."""

    id: str
    type: str
    service: str
    destination: str
    expires: str
    days_left: int | None
    requests_after_expiry: int = 0
    last_request: str = ""


@dataclass(slots=True)
class TransferRecord:
    services: dict[str, ServiceTransfers] = field(default_factory=dict)
    expiring: list[MechanismUse] = field(default_factory=list)
    expired_in_use: list[MechanismUse] = field(default_factory=list)
    unknown_revisions: dict[str, int] = field(default_factory=dict)  # revision -> rows not explained
    as_of: str = ""
    expiring_within: int = DEFAULT_EXPIRING_DAYS

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (service, destination, regime): the CSV and JSON shape."""
        out: list[dict[str, Any]] = []
        for s in sorted(self.services.values(), key=lambda s: s.service):
            for d in sorted(s.destinations.values(), key=lambda d: (d.country, d.cluster)):
                for basis in d.bases.values() or [None]:
                    mechanisms = [m for m in basis.mechanisms if m.valid] if basis else []
                    out.append(
                        {
                            "service": s.service,
                            "data_classes": ",".join(s.data_classes),
                            "subjects": ",".join(s.subjects),
                            "regime": basis.regime if basis else "",
                            "destination_cluster": d.cluster,
                            "destination_country": d.country,
                            "sources": ",".join(sorted(d.sources)),
                            "basis": basis.kind if basis else "not-regulated",
                            "basis_detail": basis.detail if basis else "",
                            "mechanism_id": ",".join(m.id for m in mechanisms),
                            "mechanism_expires": ",".join(m.expires for m in mechanisms),
                            "allowed": d.allowed,
                            "rewritten": d.rewritten,
                            "refused": d.refused,
                            "first_seen": d.first.isoformat() if d.first else "",
                            "last_seen": d.last.isoformat() if d.last else "",
                        }
                    )
        return out


def _split(text: str) -> list[str]:
    return [part for part in text.split(",") if part] or [""]


def build_transfer_record(
    groups: Iterable[Group], book: PolicyBook, *, today: date, expiring_within: int = DEFAULT_EXPIRING_DAYS
) -> TransferRecord:
    """The record of `groups` (route groups of the period) explained by `book`'s revisions."""
    record = TransferRecord(as_of=today.isoformat(), expiring_within=expiring_within)
    # (mechanism id, service, destination) -> (use, [(day, rows)])
    uses: dict[tuple[str, str, str], tuple[Any, list[tuple[str, int]]]] = {}
    newest_day: dict[tuple[str, str], str] = {}
    for group in groups:
        if not group.service or "/" not in group.service:
            continue  # an unjudgeable request (unknown host, no policy): no transfer to record
        known = book.decider(group.revision) is not None
        if not known:
            record.unknown_revisions[group.revision] = record.unknown_revisions.get(group.revision, 0) + group.rows
        profile = book.profile(group.revision, group.service)
        entry = record.services.get(group.service)
        if entry is None:
            entry = record.services[group.service] = ServiceTransfers(
                group.service, tuple(profile.data_classes), tuple(profile.subjects), tuple(profile.regimes)
            )
        sources = _split(group.source)
        destinations = _split(group.destination)
        if group.decision == "rewrite" and group.violations:
            # counted where it asked to go (what the rewrite removed); a routing row's own destination
            # is the permitted cluster the filter sent it to instead
            asked = sorted({str(v.get("destination") or "") for v in group.violations} - {""})
            destinations = asked or destinations
        for cluster in destinations:
            if not cluster:
                continue
            dest = entry.destinations.get(cluster)
            if dest is None:
                dest = entry.destinations[cluster] = Destination(cluster, book.country(cluster, group.revision))
            dest.see(group)
            dest.sources.update(s for s in sources if s)
            for source in sources:
                if not known:
                    continue
                for basis in book.bases(group.revision, group.service, source, cluster, group.day):
                    key = (group.service, cluster)
                    if group.day >= newest_day.get(key, ""):
                        dest.bases[basis.regime] = basis
                        newest_day[key] = group.day
                    for m in basis.mechanisms:
                        use_key = (m.id, group.service, cluster)
                        if use_key not in uses:
                            uses[use_key] = (m, [])
                        uses[use_key][1].append((group.day, group.rows))
                break  # the basis toward a destination is the same whichever source asked
    for (mid, service, cluster), (m, days) in sorted(uses.items()):
        expires = m.expires
        last = max(day for day, _ in days)
        left = (date.fromisoformat(expires) - today).days if expires else None
        after = sum(rows for day, rows in days if expires and day > expires)
        use = MechanismUse(mid, m.type, service, cluster, expires, left, after, last)
        if after:
            record.expired_in_use.append(use)
        elif left is not None and 0 <= left <= expiring_within:
            record.expiring.append(use)
        elif left is not None and left < 0 and last > expires:
            record.expired_in_use.append(use)
    record.expiring.sort(key=lambda u: (u.expires, u.id))
    record.expired_in_use.sort(key=lambda u: (u.expires, u.id))
    return record
