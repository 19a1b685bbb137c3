"""Selecting rows for exports and reports: the filters, streaming in constant memory, chain heads."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select

from policyengine.audit.chain import as_utc, format_time
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.schema import JSON_COLUMNS, audit_decision

T = audit_decision
DECISIONS = ("allow", "deny", "rewrite")


def parse_when(text: str, *, option: str) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise), for --since/--until/--before."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AuditStoreError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+00:00]"
        ) from exc
    return as_utc(value)


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which rows an export covers. Times are UTC; `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    regime: str | None = None
    decision: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise AuditStoreError(f"--decision {self.decision!r} is not one of {', '.join(DECISIONS)}")

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.since is not None:
            out.append(T.c.time >= self.since)
        if self.until is not None:
            out.append(T.c.time < self.until)
        if self.regime:
            r = self.regime
            out.append(
                or_(
                    T.c.regimes == r,
                    T.c.regimes.like(f"{r},%"),
                    T.c.regimes.like(f"%,{r}"),
                    T.c.regimes.like(f"%,{r},%"),
                )
            )
        if self.decision:
            out.append(T.c.decision == self.decision)
        if self.cluster:
            out.append(T.c.cluster == self.cluster)
        if self.namespace:
            out.append(T.c.namespace == self.namespace)
        if self.service:
            out.append(T.c.service == self.service)
        return out

    def where(self) -> ColumnElement[bool]:
        clauses = self.clauses()
        return and_(True, *clauses) if clauses else and_(True)

    def describe(self) -> dict[str, str | None]:
        return {
            "since": format_time(self.since) if self.since else None,
            "until": format_time(self.until) if self.until else None,
            "regime": self.regime,
            "decision": self.decision,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "service": self.service,
        }


def validated(flt: ExportFilter, regimes: set[str], clusters: set[str]) -> ExportFilter:
    """`flt` with its regime in the known casing; AuditStoreError listing the valid values when the
    regime or cluster is one neither the trail nor the policy knows (a typo would export 0 rows)."""
    regime = flt.regime
    if regime is not None:
        by_fold = {r.casefold(): r for r in regimes}
        if regime.casefold() not in by_fold:
            raise AuditStoreError(f"--regime {regime!r} is not one of {', '.join(sorted(regimes)) or '(none)'}")
        regime = by_fold[regime.casefold()]
    if flt.cluster is not None and flt.cluster not in clusters:
        raise AuditStoreError(f"--cluster {flt.cluster!r} is not one of {', '.join(sorted(clusters)) or '(none)'}")
    return replace(flt, regime=regime)


def count_rows(engine: Engine, flt: ExportFilter) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(T).where(flt.where())).scalar_one())


def stream_rows(
    engine: Engine,
    flt: ExportFilter,
    columns: Sequence[str],
    *,
    json_as_text: bool = False,
    chunk: int = 5000,
) -> Iterator[dict[str, Any]]:
    """Matching rows in (time, id) order, fetched with a server-side cursor: constant memory.

    Structured columns come back parsed, or as their stored canonical JSON text with `json_as_text`.
    """
    query = select(*(T.c[name] for name in columns)).where(flt.where()).order_by(T.c.time, T.c.id)
    parse = [] if json_as_text else [name for name in columns if name in JSON_COLUMNS]
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for row in result.mappings():
            item = dict(row)
            for name in parse:
                if item[name] is not None:
                    item[name] = json.loads(item[name])
            yield item


def stream_tuples(
    engine: Engine, flt: ExportFilter, columns: Sequence[str], *, chunk: int = 10_000
) -> Iterator[Sequence[Any]]:
    """Matching rows as plain tuples in (time, id) order (structured columns as stored text): the fast
    path of the CSV export."""
    query = select(*(T.c[name] for name in columns)).where(flt.where()).order_by(T.c.time, T.c.id)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for partition in result.partitions():
            yield from partition


@dataclass(frozen=True, slots=True)
class Head:
    """The last row of a chain as the database holds it now."""

    chain_id: str
    seq: int
    hash: str


def chain_heads(engine: Engine) -> list[Head]:
    """Each chain's last (seq, hash)."""
    last = select(T.c.chain_id, func.max(T.c.seq).label("seq")).group_by(T.c.chain_id).subquery()
    query = (
        select(T.c.chain_id, T.c.seq, T.c.hash)
        .join(last, and_(T.c.chain_id == last.c.chain_id, T.c.seq == last.c.seq))
        .order_by(T.c.chain_id)
    )
    with engine.connect() as connection:
        return [Head(str(r.chain_id), int(r.seq), str(r.hash)) for r in connection.execute(query)]
