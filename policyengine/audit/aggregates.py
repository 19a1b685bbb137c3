"""Aggregates of the trail for the evidence (report, transfer record, audit page): SQL GROUP BY queries.

The report over 100,000 decisions must not load 100,000 rows, so every figure here is computed by the
database; what comes back is one row per group (route, day, decision, violation set). Violations and
warnings come back as their stored JSON text, parsed once per group. The appendix and the audit page
read a bounded page of rows (`rows_page`) and single decisions (`one_decision`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, select

from policyengine.audit.chain import as_utc
from policyengine.audit.query import ExportFilter
from policyengine.audit.schema import JSON_COLUMNS, audit_decision

T = audit_decision


@dataclass(frozen=True, slots=True)
class Totals:
    rows: int
    first: datetime | None
    last: datetime | None
    by_decision: dict[str, int]


@dataclass(frozen=True, slots=True)
class Group:
    """Rows that share a route, decision, revision, regimes and day (and, for refusals and rewrites,
    violations and warnings): how many, first and last seen."""

    service: str
    source: str
    destination: str
    decision: str
    revision: str
    regimes: str
    day: str
    rows: int
    first: datetime
    last: datetime
    violations: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str = ""
    permitted: tuple[str, ...] = ()


def _day(dialect: str) -> Any:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", T.c.time), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", T.c.time)


def _parsed(text: Any) -> Any:
    if text is None:
        return []
    return json.loads(text) if isinstance(text, str) else text


def totals(connection: Connection, where: ColumnElement[bool]) -> Totals:
    rows, first, last = connection.execute(
        select(func.count(), func.min(T.c.time), func.max(T.c.time)).where(where)
    ).one()
    by_decision = {
        str(d): int(n)
        for d, n in connection.execute(select(T.c.decision, func.count()).where(where).group_by(T.c.decision))
    }
    return Totals(int(rows), as_utc(first) if first else None, as_utc(last) if last else None, by_decision)


def groups(connection: Connection, where: ColumnElement[bool], *, detailed: bool) -> list[Group]:
    """The rows grouped by route, decision, revision, regimes and day; `detailed` adds the violations,
    warnings, kind and permitted clusters to the key (for refusals and rewrites: few distinct values)."""
    day = _day(connection.dialect.name).label("day")
    keys: list[Any] = [
        T.c.service,
        T.c.source_cluster,
        T.c.destination_cluster,
        T.c.decision,
        T.c.policy_revision,
        T.c.regimes,
        day,
    ]
    if detailed:
        keys += [T.c.violations, T.c.warnings, T.c.kind, T.c.permitted_clusters]
    query = select(*keys, func.count(), func.min(T.c.time), func.max(T.c.time)).where(where).group_by(*keys)
    out: list[Group] = []
    for row in connection.execute(query):
        values = list(row)
        service, source, destination, decision, revision, regimes, day_text = (str(v or "") for v in values[:7])
        extra: dict[str, Any] = {}
        if detailed:
            violations, warnings, kind, permitted = values[7:11]
            extra = {
                "violations": tuple(v for v in _parsed(violations) if isinstance(v, dict)),
                "warnings": tuple(str(w) for w in _parsed(warnings)),
                "kind": str(kind or ""),
                "permitted": tuple(str(c) for c in _parsed(permitted)),
            }
        n, first, last = values[-3:]
        out.append(
            Group(
                service, source, destination, decision, revision, regimes, day_text, int(n),
                as_utc(first), as_utc(last), **extra,
            )
        )  # fmt: skip
    return out


def revisions(connection: Connection, where: ColumnElement[bool]) -> list[tuple[str, datetime, datetime, int]]:
    query = (
        select(T.c.policy_revision, func.min(T.c.time), func.max(T.c.time), func.count())
        .where(where)
        .group_by(T.c.policy_revision)
        .order_by(func.min(T.c.time))
    )
    return [(str(r), as_utc(f), as_utc(la), int(n)) for r, f, la, n in connection.execute(query)]


PAGE_COLUMNS = (
    "time", "decision_id", "source", "cluster", "operation", "kind", "namespace", "name", "service",
    "source_cluster", "destination_cluster", "regimes", "decision", "enforcement", "violations",
    "permitted_clusters", "warnings", "patch", "policy_revision", "engine", "dry_run", "user", "chain_id", "seq",
)  # fmt: skip


def _row(mapping: Any) -> dict[str, Any]:
    item = dict(mapping)
    for name in JSON_COLUMNS:
        if name in item:
            item[name] = _parsed(item[name])
    item["time"] = as_utc(item["time"])
    return item


def rows_page(
    connection: Connection, where: ColumnElement[bool], *, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of matching rows, newest first."""
    query = (
        select(*(T.c[name] for name in PAGE_COLUMNS))
        .where(where)
        .order_by(T.c.time.desc(), T.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_row(m) for m in connection.execute(query).mappings()]


def one_decision(connection: Connection, decision_id: str) -> dict[str, Any] | None:
    query = select(*(T.c[name] for name in PAGE_COLUMNS)).where(T.c.decision_id == decision_id).limit(1)
    found = connection.execute(query).mappings().first()
    return _row(found) if found is not None else None


def known_values(connection: Connection) -> tuple[set[str], set[str]]:
    """(regimes, clusters) the trail holds: what a filter may name."""
    regimes: set[str] = set()
    for (text,) in connection.execute(select(T.c.regimes).distinct()):
        regimes.update(r for r in str(text or "").split(",") if r)
    clusters = {str(c) for (c,) in connection.execute(select(T.c.cluster).distinct()) if c}
    return regimes, clusters


def evidence_queries(engine: Engine, flt: ExportFilter) -> tuple[Totals, list[Group], list[Group], list[Any]]:
    """Everything the report and the transfer record need, in one connection: totals, the allowed
    groups (route level), the refused and rewritten groups (with violations), the revisions."""
    where = flt.where()
    with engine.connect() as connection:
        total = totals(connection, where)
        plain = groups(connection, and_not_flagged(where, False), detailed=False)
        flagged = groups(connection, and_not_flagged(where, True), detailed=True)
        revs = revisions(connection, where)
    return total, plain, flagged, revs


def and_not_flagged(where: ColumnElement[bool], flagged: bool) -> ColumnElement[bool]:
    """Rows with violations (refused, rewritten, warned) or without."""
    empty = T.c.violations == "[]"
    return and_(where, ~empty if flagged else empty)
