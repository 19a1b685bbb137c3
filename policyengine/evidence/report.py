"""The DPO report's content: a summary page, then refusals and rewrites grouped by (service, route,
rule), the transfer record, and a capped appendix of rows with the command that exports them all.

Every figure comes from aggregate queries (`audit.aggregates`): one group per route, decision, revision
and day, so the report over 100,000 decisions reads a few hundred groups, not the rows.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from policyengine.audit.aggregates import Group, Totals
from policyengine.audit.query import ExportFilter
from policyengine.audit.verify_report import VerifyReport
from policyengine.evidence.basis import PolicyBook
from policyengine.evidence.transfers import DEFAULT_EXPIRING_DAYS, TransferRecord, build_transfer_record

GROUP_LIMIT = 40  # rows of each grouped table; the rest is counted and pointed to
APPENDIX_LIMIT = 100


@dataclass(slots=True)
class RuleGroup:
    """Refusals (or rewrites, or warnings) of one (service, route, rule)."""

    service: str
    route: str
    regime: str
    rule: str
    article: str
    refused_end: str
    remedy: str
    message: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    removed: set[str] = field(default_factory=set)

    def see(self, group: Group) -> None:
        self.count += group.rows
        self.first = group.first if self.first is None else min(self.first, group.first)
        self.last = group.last if self.last is None else max(self.last, group.last)


@dataclass(slots=True)
class Report:
    generated_at: str
    database: str
    filters: dict[str, str | None]
    totals: Totals
    period: tuple[str, str]
    by_regime: list[tuple[str, int, int, int, int]]  # regime, decisions, allowed, rewritten, refused
    by_article: list[tuple[str, str, int, int, int]]  # regime, article, refused, rewritten, warned
    per_day: list[tuple[str, dict[str, int]]]
    verification: VerifyReport | None
    denials: list[RuleGroup]
    rewrites: list[RuleGroup]
    warnings: list[RuleGroup]
    transfers: TransferRecord
    revisions: list[tuple[str, datetime, datetime, int]]
    appendix: list[dict[str, Any]]
    appendix_command: str
    group_limit: int = GROUP_LIMIT
    appendix_limit: int = APPENDIX_LIMIT
    counts: dict[str, int] = field(default_factory=dict)  # groups before the cap: denials, rewrites, warnings


def route_text(source: str, destination: str) -> str:
    if not source and not destination:
        return "no route"
    return f"{source or '?'} → {destination or '(none)'}"


def _rule_groups(groups: list[Group], decision: str, *, warned: bool = False) -> list[RuleGroup]:
    keyed: dict[tuple[str, ...], RuleGroup] = {}
    for g in groups:
        if warned:
            if g.decision != "allow" or not g.violations:
                continue
        elif g.decision != decision:
            continue
        for v in g.violations or ({},):
            service = str(v.get("service") or g.service or g.kind or "(unnamed)")
            route = route_text(str(v.get("source") or g.source), str(v.get("destination") or g.destination))
            key = (service, route, str(v.get("regime", "")), str(v.get("rule", "")))
            item = keyed.get(key)
            if item is None:
                item = keyed[key] = RuleGroup(
                    service, route, key[2], key[3], str(v.get("article", "")), str(v.get("cluster", "")),
                    str(v.get("remedy", "")), str(v.get("message", "")),
                )  # fmt: skip
            item.see(g)
            if decision == "rewrite":
                removed = [w for w in g.warnings if "refused by" not in w] or [
                    f"{v.get('cluster') or g.destination} (kept: {', '.join(g.permitted) or 'none'})"
                ]
                item.removed.update(removed)
    return sorted(keyed.values(), key=lambda r: (-r.count, r.service, r.route, r.rule))


def build_report(
    *,
    totals: Totals,
    plain: list[Group],
    flagged: list[Group],
    revisions: list[tuple[str, datetime, datetime, int]],
    appendix: list[dict[str, Any]],
    flt: ExportFilter,
    database: str,
    verification: VerifyReport | None,
    book: PolicyBook,
    today: date | None = None,
    expiring_within: int = DEFAULT_EXPIRING_DAYS,
) -> Report:
    """The report from the aggregates (see `audit.aggregates.evidence_queries`)."""
    everything = [*plain, *flagged]
    regimes: dict[str, Counter[str]] = {}
    days: dict[str, Counter[str]] = {}
    for g in everything:
        for regime in g.regimes.split(",") if g.regimes else ["(none)"]:
            regimes.setdefault(regime, Counter())[g.decision] += g.rows
        days.setdefault(g.day, Counter())[g.decision] += g.rows
    by_regime = sorted(
        ((r, sum(c.values()), c["allow"], c["rewrite"], c["deny"]) for r, c in regimes.items()),
        key=lambda t: (-t[1], t[0]),
    )
    articles: dict[tuple[str, str], Counter[str]] = {}
    for g in flagged:
        seen: set[tuple[str, str]] = set()
        for v in g.violations:
            key = (str(v.get("regime", "")), str(v.get("article", "")))
            if key in seen:
                continue  # a row counts once per article
            seen.add(key)
            kind = {"deny": "refused", "rewrite": "rewritten"}.get(g.decision, "warned")
            articles.setdefault(key, Counter())[kind] += g.rows
    by_article = sorted(
        ((r, a, c["refused"], c["rewritten"], c["warned"]) for (r, a), c in articles.items()),
        key=lambda t: (t[0], -(t[2] + t[3] + t[4])),
    )
    denials = _rule_groups(flagged, "deny")
    rewrites = _rule_groups(flagged, "rewrite")
    warnings = _rule_groups(flagged, "allow", warned=True)
    today = today or datetime.now(UTC).date()
    transfers = build_transfer_record(everything, book, today=today, expiring_within=expiring_within)
    first = totals.first.isoformat() if totals.first else "—"
    last = totals.last.isoformat() if totals.last else "—"
    period = (
        flt.since.isoformat() if flt.since else first,
        flt.until.isoformat() if flt.until else last,
    )
    return Report(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database=database,
        filters=flt.describe(),
        totals=totals,
        period=period,
        by_regime=by_regime,
        by_article=by_article,
        per_day=[(d, dict(c)) for d, c in sorted(days.items())],
        verification=verification,
        denials=denials[:GROUP_LIMIT],
        rewrites=rewrites[:GROUP_LIMIT],
        warnings=warnings[:GROUP_LIMIT],
        transfers=transfers,
        revisions=revisions,
        appendix=appendix[:APPENDIX_LIMIT],
        appendix_command=export_command(flt, database),
        counts={"denials": len(denials), "rewrites": len(rewrites), "warnings": len(warnings)},
    )


def export_command(flt: ExportFilter, database: str) -> str:
    """The exact command that exports every row of the report's filter."""
    parts = ["policyengine", "audit", "export", "-o", "csv", "--out", "decisions.csv"]
    for option, value in (
        ("--since", flt.since.isoformat() if flt.since else None),
        ("--until", flt.until.isoformat() if flt.until else None),
        ("--regime", flt.regime),
        ("--decision", flt.decision),
        ("--cluster", flt.cluster),
        ("--namespace", flt.namespace),
        ("--service", flt.service),
    ):
        if value:
            parts += [option, value]
    parts += ["--db", database]
    return shlex.join(parts)
