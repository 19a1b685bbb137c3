"""Pruning old rows while the rest stays verifiable: per chain, the oldest rows before a date are
deleted and a checkpoint keeps the last pruned (seq, hash), where verify then starts.

Only a prefix of each chain is pruned (rows up to the first one at or after the date), so a chain never
gets a hole. Retention: `--before` or `--retention-days` (default $POLICYENGINE_AUDIT_RETENTION_DAYS).

A signed trail (its registry holds entries) is pruned only with the signing key: the trail is verified
first (pruning must not hide a break), only rows a signed head vouches for are pruned, and each
checkpoint is signed into the registry (a `prune` statement) in the same transaction as the deletion,
so a prefix deleted behind a forged checkpoint is told apart from a real prune.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from policyengine.audit import registry
from policyengine.audit.chain import format_time
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.schema import audit_checkpoint, audit_decision
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.statements import builder
from policyengine.audit.verify import verify

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


PRUNE_ATTEMPTS = 5


def prune(
    engine: Engine,
    before: datetime,
    *,
    key: SigningKey | None = None,
    keys: Sequence[VerifyKey] = (),
) -> list[Pruned]:
    """Delete, per chain, the rows older than `before` that precede every newer row; record checkpoints.

    With `key` (required once the trail is signed): verify first with its public half and `keys`
    (refused on any finding), prune no further than each chain's signed head, sign each checkpoint."""
    signed_entries, _ = registry.registry_summary(engine)
    if key is None:
        if signed_entries:
            raise AuditStoreError(
                f"the trail is signed ({signed_entries} registry entries): give the signing key "
                f"(--signing-key) so the prune checkpoints are signed too; unsigned ones would show as forged"
            )
        with engine.begin() as c:
            return _prune(c, before, None, None)
    report = verify(engine, keys=[key.public, *keys])
    if not report.ok:
        raise AuditStoreError(
            f"verify finds {len(report.findings)} break(s), first {report.findings[0]}; pruning would hide "
            f"them: investigate with `policyengine audit verify` first"
        )
    limits = {head.chain_id: head.signed_seq or 0 for head in report.chains}
    for attempt in range(PRUNE_ATTEMPTS):
        try:
            with engine.begin() as c:
                return _prune(c, before, key, limits)
        except IntegrityError:  # another process appended to the registry meanwhile: link to it
            time.sleep(0.05 * (attempt + 1))
    raise AuditStoreError(f"could not sign the prune checkpoints after {PRUNE_ATTEMPTS} attempts; retry")


def _prune(c: Connection, before: datetime, key: SigningKey | None, limits: dict[str, int] | None) -> list[Pruned]:
    """One pruning transaction: per chain, the prefix older than `before` (through `limits`, if given)."""
    out: list[Pruned] = []
    chains = [str(x) for x in c.execute(select(T.c.chain_id).distinct()).scalars()]
    for chain_id in chains:
        first_kept = c.execute(
            select(func.min(T.c.seq)).where(T.c.chain_id == chain_id, T.c.time >= before)
        ).scalar()
        bound = T.c.seq < first_kept if first_kept is not None else T.c.seq.isnot(None)
        if limits is not None:
            bound = bound & (T.c.seq <= limits.get(chain_id, 0))
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
        total = count + (int(previous) if previous is not None else 0)
        if key is not None:
            _sign(c, key, chain_id, int(last.seq), str(last.hash), total, before)
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


def _sign(c: Connection, key: SigningKey, chain_id: str, seq: int, digest: str, rows: int, before: datetime) -> None:
    """The signed `prune` statement of a checkpoint, appended in the pruning transaction."""
    fields = {"seq": seq, "hash": digest, "pruned_rows": rows, "pruned_before": before}
    registry.append(c, key, builder("prune", chain_id, key.key_id, **fields))
