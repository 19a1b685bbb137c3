"""Signing statements about chains into the registry: a chain opened, a head reached, a chain closed.

A `Sealer` holds the signing key and a database connection of its own (never the writer's). It signs
only what it is told by whoever knows it first-hand (the head signer: its writer's durable head), never
a head read back from the database, which anyone with write access could have changed.

    sealer = Sealer.open(url, SigningKey.load(path))
    sealer.opened("eu-1-41-ab12cd34")                      # at start: the chain is registered
    sealer.head("eu-1-41-ab12cd34", 1200, "9f…")           # every N rows / T seconds
    sealer.head("eu-1-41-ab12cd34", 1250, "c1…", closed=True)   # at a graceful stop, nothing spooled
    sealer.close()
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from policyengine.audit.registry import Entry, append_retrying
from policyengine.audit.signing import SigningKey
from policyengine.audit.statements import Statement
from policyengine.audit.store import make_engine, require_migrated


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

    def _sign(self, chain_id: str, kind: str, **fields: object) -> Entry:
        key_id, now = self.key.key_id, datetime.now(UTC)

        def build(number: int, prev: str) -> Statement:
            return Statement.model_validate(
                {
                    "kind": kind,
                    "number": number,
                    "prev": prev,
                    "chain_id": chain_id,
                    "time": now,
                    "key_id": key_id,
                    **fields,
                }
            )

        return append_retrying(self.engine, self.key, build)

    def close(self) -> None:
        self.engine.dispose()
