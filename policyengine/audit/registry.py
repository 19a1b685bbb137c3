"""The signed registry of chains: appending signed statements to `audit_registry`, reading them back,
and replaying them into what they prove about each chain.

Appending (`append`): a statement takes the number after the newest entry's and links to it (`prev`,
the SHA-256 of its bytes). On PostgreSQL appenders take turns (a transaction-level advisory lock,
which plain reads do not wait for); on SQLite two processes may collide on the number, and the later
one retries on the new newest entry (`append_retrying`). Nothing here decides what to sign: the head
signer signs what its writer wrote, prune what it pruned.

Replaying (`replay`): every entry must be a statement signed by one of the given public keys, carry its
own number, follow the entry before it (numbers without a gap, `prev` its digest). The entries that
pass say, per chain, its newest signed head, whether it was closed there, and its signed prune point.
Only signed entries count; a broken one is a finding, and the replay goes on with the next.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from policyengine.audit.errors import AuditStoreError
from policyengine.audit.findings import Finding
from policyengine.audit.schema import audit_registry
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.statements import FIRST_PREV, Statement, StatementError, digest
from policyengine.audit.store import display_url

R = audit_registry
READ_CHUNK = 5_000
APPEND_ATTEMPTS = 20
# The PostgreSQL advisory lock appenders take in turn (needs no privilege beyond connecting, unlike LOCK
# TABLE): the first 8 bytes of SHA-256("policyengine audit registry") as a signed integer.
APPEND_LOCK = int.from_bytes(hashlib.sha256(b"policyengine audit registry").digest()[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored registry entry: a statement's bytes (as text) and their signature."""

    number: int
    statement: str
    signature: str

    @property
    def digest(self) -> str:
        return digest(self.statement)


@dataclass(slots=True)
class SignedChain:
    """What the registry's signed statements say about one chain."""

    chain_id: str
    registered_at: int  # the number of the first entry naming it
    head: Statement | None = None  # the newest head statement (highest seq)
    head_entry: Entry | None = None  # ...as stored (the bytes and signature an anchor copies)
    closed: bool = False  # the newest head closed it, and no later `chain` statement reopened it
    prune: Statement | None = None  # the newest prune statement

    @property
    def signed_seq(self) -> int:
        """The highest seq a signature vouches for (0: none yet)."""
        seqs = [s.seq for s in (self.head, self.prune) if s is not None and s.seq is not None]
        return max(seqs, default=0)


@dataclass(slots=True)
class Registry:
    """The replayed registry: its entries, the chains they vouch for, and every broken entry."""

    entries: int = 0
    newest: Entry | None = None
    chains: dict[str, SignedChain] = field(default_factory=dict)
    key_ids: set[str] = field(default_factory=set)  # every key that signed a valid entry
    findings: list[Finding] = field(default_factory=list)


def read_entries(engine: Engine) -> Iterator[Entry]:
    """Every entry in number order (streamed in chunks)."""
    last = 0
    with engine.connect() as connection:
        while True:
            chunk = connection.execute(
                select(R.c.number, R.c.statement, R.c.signature)
                .where(R.c.number > last)
                .order_by(R.c.number)
                .limit(READ_CHUNK)
            ).all()
            for row in chunk:
                yield Entry(int(row.number), str(row.statement), str(row.signature))
            if len(chunk) < READ_CHUNK:
                return
            last = int(chunk[-1].number)


def newest_entry(connection: Connection) -> Entry | None:
    row = connection.execute(
        select(R.c.number, R.c.statement, R.c.signature).order_by(R.c.number.desc()).limit(1)
    ).first()
    return None if row is None else Entry(int(row.number), str(row.statement), str(row.signature))


def append(connection: Connection, key: SigningKey, build: Callable[[int, str], Statement]) -> Entry:
    """Sign `build(number, prev)` and store it as the next entry, inside the caller's transaction
    (IntegrityError when another process took the number first: retry the transaction)."""
    if connection.dialect.name == "postgresql":  # one appender at a time; readers do not wait
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    newest = newest_entry(connection)
    number = newest.number + 1 if newest is not None else 1
    statement = build(number, newest.digest if newest is not None else FIRST_PREV)
    if statement.key_id != key.key_id or statement.number != number:
        raise ValueError(f"statement {statement.number} by {statement.key_id} built for entry {number} by {key.key_id}")
    data = statement.encode()
    entry = Entry(number, data.decode(), key.sign(data))
    connection.execute(insert(R).values(number=number, statement=entry.statement, signature=entry.signature))
    return entry


def append_retrying(engine: Engine, key: SigningKey, build: Callable[[int, str], Statement]) -> Entry:
    """`append` in a transaction of its own, retried while other processes take the numbers first.
    Raises AuditStoreError when the database cannot take it."""
    where = display_url(engine.url.render_as_string(hide_password=False))
    for attempt in range(APPEND_ATTEMPTS):
        try:
            with engine.begin() as connection:
                return append(connection, key, build)
        except IntegrityError:
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))  # another process appended first
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == APPEND_ATTEMPTS - 1:  # SQLite: another writer
                raise _store_error(where, exc) from exc
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
        except SQLAlchemyError as exc:
            raise _store_error(where, exc) from exc
    raise AuditStoreError(
        f"audit database {where}: could not append to the signed registry after {APPEND_ATTEMPTS} attempts "
        f"(other processes kept appending); it is retried at the next checkpoint"
    )


def _store_error(where: str, exc: SQLAlchemyError) -> AuditStoreError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return AuditStoreError(
        f"audit database {where}: cannot append to the signed registry: "
        f"{reason[0] if reason else type(exc).__name__}; check that it is reachable and migrated"
    )


def replay(entries: Iterable[Entry], keys: Sequence[VerifyKey]) -> Registry:
    """Check every entry (signature, number, link) and collect what the valid ones say."""
    by_id = {key.key_id: key for key in keys}
    registry = Registry()
    before: Entry | None = None
    for entry in entries:
        registry.entries += 1
        registry.newest = entry
        try:
            parsed: Statement | StatementError = Statement.parse(entry.statement)
        except StatementError as exc:
            parsed = exc
        _check_link(registry, before, entry, parsed)
        before = entry
        statement = _signed(registry, entry, parsed, by_id)
        if statement is not None:
            registry.key_ids.add(statement.key_id)
            _apply(registry, entry, statement)
    return registry


def registry_summary(engine: Engine) -> tuple[int, list[str]]:
    """How many entries the registry holds, and the key its newest one names (nothing checked)."""
    with engine.connect() as connection:
        count = int(connection.execute(select(func.count()).select_from(R)).scalar_one())
        newest = newest_entry(connection)
    if newest is None:
        return count, []
    try:
        return count, [Statement.parse(newest.statement).key_id]
    except StatementError:
        return count, []


def entry_at(engine: Engine, number: int) -> Entry | None:
    """The registry entry `number`, if it is there."""
    with engine.connect() as connection:
        row = connection.execute(select(R.c.number, R.c.statement, R.c.signature).where(R.c.number == number)).first()
    return None if row is None else Entry(int(row.number), str(row.statement), str(row.signature))


def _check_link(registry: Registry, before: Entry | None, entry: Entry, parsed: Statement | StatementError) -> None:
    expected = before.number + 1 if before is not None else 1
    if entry.number != expected:
        gap = f"entry {expected}" if entry.number == expected + 1 else f"entries {expected}..{entry.number - 1}"
        registry.findings.append(Finding("registry", "", entry.number, f"{gap} missing: the signed registry was cut"))
        return  # its link names an entry that is gone
    prev = before.digest if before is not None else FIRST_PREV
    linked = parsed.prev if isinstance(parsed, Statement) else None
    if linked is not None and linked != prev:
        registry.findings.append(
            Finding(
                "registry",
                "",
                entry.number,
                f"does not link to entry {expected - 1}: that entry was replaced (it hashes to {prev[:16]}…, "
                f"this one names {linked[:16]}…)",
            )
        )


def _signed(
    registry: Registry, entry: Entry, parsed: Statement | StatementError, keys: dict[str, VerifyKey]
) -> Statement | None:
    """The entry's statement when it is well formed and its signature verifies; else a finding."""

    def forged(detail: str) -> None:
        registry.findings.append(Finding("forged", "", entry.number, detail))

    if isinstance(parsed, StatementError):
        forged(f"not a registry statement ({parsed})")
        return None
    statement = parsed
    if statement.number != entry.number:
        forged(f"the statement says it is entry {statement.number}: moved")
        return None
    key = keys.get(statement.key_id)
    if key is None:
        given = ", ".join(sorted(keys)) or "none"
        forged(f"signed by {statement.key_id}, not one of the public keys given ({given})")
        return None
    if not key.verify(entry.statement.encode(), entry.signature):
        forged(f"its signature does not verify with {statement.key_id}: written or altered without the key")
        return None
    return statement


def _apply(registry: Registry, entry: Entry, statement: Statement) -> None:
    chain = registry.chains.get(statement.chain_id)
    if chain is None:
        chain = registry.chains[statement.chain_id] = SignedChain(statement.chain_id, entry.number)
    if statement.kind == "chain":
        chain.closed = False
    elif statement.kind == "head":
        if chain.head is None or statement.head[0] >= chain.head.head[0]:
            chain.head, chain.head_entry = statement, entry
            chain.closed = bool(statement.closed)
    elif chain.prune is None or statement.head[0] >= chain.prune.head[0]:
        chain.prune = statement
