"""Pruning old rows while the rest stays verifiable: per chain, the oldest rows before a date are
deleted and a checkpoint keeps the last pruned (seq, hash), where verify then starts.

Only a prefix of each chain is pruned (rows up to the first one at or after the date), so a chain never
gets a hole. Retention: `--before` or `--retention-days` (default $POLICYENGINE_AUDIT_RETENTION_DAYS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update

from policyengine.audit.chain import format_time
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.schema import audit_checkpoint, audit_decision

T, C = audit_decision, audit_checkpoint
RETENTION_ENV = "POLICYENGINE_AUDIT_RETENTION_DAYS"


@dataclass(frozen=True, slots=True)
class Pruned:
    """What was pruned from one chain."""

    chain_id: str
    rows: int
    through_seq: int


def retention_cutoff(days: int | None = None, now: datetime | None = None) -> datetime | None:
    """The date before which rows may go, from `days` or $POLICYENGINE_AUDIT_RETENTION_DAYS."""
    if days is None:
        raw = os.environ.get(RETENTION_ENV)
        if not raw:
            return None
        try:
            days = int(raw)
        except ValueError as exc:
            raise AuditStoreError(f"${RETENTION_ENV}={raw!r} is not a whole number of days") from exc
    if days < 1:
        raise AuditStoreError(f"retention of {days} days would prune everything: give at least 1 day")
    return (now or datetime.now(UTC)) - timedelta(days=days)


def prune(engine: Engine, before: datetime) -> list[Pruned]:
    """Delete, per chain, the rows older than `before` that precede every newer row; record checkpoints."""
    out: list[Pruned] = []
    with engine.begin() as c:
        chains = [str(x) for x in c.execute(select(T.c.chain_id).distinct()).scalars()]
        for chain_id in chains:
            first_kept = c.execute(
                select(func.min(T.c.seq)).where(T.c.chain_id == chain_id, T.c.time >= before)
            ).scalar()
            bound = T.c.seq < first_kept if first_kept is not None else T.c.seq.isnot(None)
            last = c.execute(
                select(T.c.seq, T.c.hash).where(T.c.chain_id == chain_id, bound).order_by(T.c.seq.desc()).limit(1)
            ).first()
            if last is None:
                continue
            count = int(c.execute(select(func.count()).where(T.c.chain_id == chain_id, bound)).scalar_one())
            c.execute(delete(T).where(T.c.chain_id == chain_id, T.c.seq <= last.seq))
            values = {
                "seq": int(last.seq),
                "hash": str(last.hash),
                "pruned_before": before,
                "created_at": datetime.now(UTC),
            }
            previous = c.execute(select(C.c.pruned_rows).where(C.c.chain_id == chain_id)).scalar()
            note = f"pruned rows before {format_time(before)} through seq {last.seq}"
            if previous is None:
                c.execute(insert(C).values(chain_id=chain_id, pruned_rows=count, note=note, **values))
            else:
                c.execute(
                    update(C)
                    .where(C.c.chain_id == chain_id)
                    .values(pruned_rows=int(previous) + count, note=note, **values)
                )
            out.append(Pruned(chain_id, count, int(last.seq)))
    return out
