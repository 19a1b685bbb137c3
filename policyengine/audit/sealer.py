"""Signing statements about chains into the registry: a chain opened, a head reached, a chain closed.

A `Sealer` holds the signing key and a database connection of its own (never the writer's). It signs
only what it is told by whoever knows it first-hand (the head signer: its writer's durable head), never
a head read back from the database, which anyone with write access could have changed.

    sealer = Sealer.open(url, SigningKey.load(path))
    sealer.opened("eu-1-41-ab12cd34")                      # at start: the chain is registered
    sealer.head("eu-1-41-ab12cd34", 1200, "9f…")           # every N rows / T seconds
    sealer.head("eu-1-41-ab12cd34", 1250, "c1…", closed=True)   # at a graceful stop, nothing spooled
    sealer.close()

`seal_unsigned` (the `audit seal` command) signs the chains no signed statement names yet, as found:
for a trail written before the key was configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select

from policyengine.audit.chain import as_utc
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.registry import Entry, append_retrying
from policyengine.audit.schema import audit_checkpoint
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.statements import Kind, builder
from policyengine.audit.store import make_engine, require_migrated
from policyengine.audit.verify import verify
from policyengine.audit.verify_report import ChainHead


class Sealer:
    """Signs `chain` and `head` statements with `key` into the registry of `engine`'s database."""

    def __init__(self, engine: Engine, key: SigningKey) -> None:
        self.engine = engine
        self.key = key

    @classmethod
    def open(cls, url: str | None, key: SigningKey, *, check_schema: bool = True) -> Sealer:
        """A sealer on `url` with its own connections. Raises AuditStoreError (bad URL; unmigrated or
        unreachable database when `check_schema`: the server skips it, to start while the database is
        down, and retries each checkpoint)."""
        engine = make_engine(url, connect_timeout=2, pre_ping=True)
        try:
            if check_schema:
                require_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, key)

    def opened(self, chain_id: str) -> Entry:
        """Register `chain_id`: from now on verify expects it to exist."""
        return self._sign(chain_id, "chain")

    def head(self, chain_id: str, seq: int, digest: str, *, closed: bool = False) -> Entry:
        """Sign that the chain's rows through (seq, digest) are in the database; `closed`: none follow."""
        return self._sign(chain_id, "head", seq=seq, hash=digest, closed=closed)

    def pruned(self, chain_id: str, seq: int, digest: str, rows: int, before: datetime) -> Entry:
        """Sign a prune checkpoint: the chain's rows through (seq, digest), `rows` in all, were pruned."""
        return self._sign(chain_id, "prune", seq=seq, hash=digest, pruned_rows=rows, pruned_before=before)

    def _sign(self, chain_id: str, kind: Kind, **fields: object) -> Entry:
        return append_retrying(self.engine, self.key, builder(kind, chain_id, self.key.key_id, **fields))

    def close(self) -> None:
        self.engine.dispose()


def prune_checkpoints(engine: Engine) -> dict[str, tuple[int, str, int, datetime]]:
    """Each chain's prune checkpoint: (seq, hash, pruned rows, pruned before)."""
    c = audit_checkpoint
    with engine.connect() as connection:
        rows = connection.execute(select(c.c.chain_id, c.c.seq, c.c.hash, c.c.pruned_rows, c.c.pruned_before))
        return {
            str(r.chain_id): (int(r.seq), str(r.hash), int(r.pruned_rows), as_utc(r.pruned_before)) for r in rows
        }


def seal_unsigned(engine: Engine, key: SigningKey, keys: Sequence[VerifyKey] = ()) -> list[ChainHead]:
    """Sign the heads (and prune checkpoints) of the chains no signed statement names yet (written
    before the key was configured, or by `check --audit` without it), as they are now: whoever runs
    this vouches for them. Refused (AuditStoreError) while verify finds anything else."""
    report = verify(engine, keys=[key.public, *keys])
    signed = report.registry.chains if report.registry is not None else {}
    unsigned = [head for head in report.chains if head.chain_id not in signed]
    names = {head.chain_id for head in unsigned}
    other = [f for f in report.findings if not (f.kind == "unsigned" and f.chain_id in names)]
    if other:
        raise AuditStoreError(
            f"verify finds {len(other)} break(s), first {other[0]}: sealing would vouch for them; "
            f"investigate with `policyengine audit verify` first"
        )
    checkpoints = prune_checkpoints(engine)
    sealer = Sealer(engine, key)
    for head in unsigned:
        sealer.opened(head.chain_id)
        mark = checkpoints.get(head.chain_id)
        if mark is not None:
            sealer.pruned(head.chain_id, *mark)
        sealer.head(head.chain_id, head.last_seq, head.head_hash)
    return unsigned
