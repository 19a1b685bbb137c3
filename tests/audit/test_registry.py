"""The signed registry: statements (one encoding, strict parsing), appending (numbered, linked, safe
from several processes at once) and replaying (every entry's signature, number and link checked)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from policyengine.audit.chain import GENESIS
from policyengine.audit.registry import Entry, read_entries, replay
from policyengine.audit.schema import audit_registry
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.audit.statements import Statement, StatementError, digest
from policyengine.audit.store import make_engine

R = audit_registry
H1, H2 = "1" * 64, "2" * 64


def _head(number: int = 1, **fields: object) -> Statement:
    values: dict[str, object] = {
        "kind": "head",
        "number": number,
        "prev": GENESIS,
        "chain_id": "eu-1-a",
        "seq": 7,
        "hash": H1,
        "time": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        "key_id": "ed25519:0123456789abcdef",
        "closed": False,
        **fields,
    }
    return Statement.model_validate(values)


def test_a_statement_encodes_canonically_and_parses_back() -> None:
    statement = _head()
    data = statement.encode()
    assert data == (
        b'{"chain_id":"eu-1-a","closed":false,"format":"policyengine-audit-registry/1","hash":"' + H1.encode()
        + b'","key_id":"ed25519:0123456789abcdef","kind":"head","number":1,"prev":"' + GENESIS.encode()
        + b'","seq":7,"time":"2025-03-01T12:00:00.000000Z"}'
    )  # fmt: skip
    assert Statement.parse(data) == statement
    assert digest(data) == digest(data.decode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.replace(b'"seq":7', b'"seq":"7"'), "seq: Input should be a valid integer"),
        (lambda d: d.replace(b',"closed":false', b""), "a head statement needs `closed`"),
        (lambda d: d.replace(b"}", b',"extra":1}'), "extra: Extra inputs are not permitted"),
        (lambda d: d.replace(b"registry/1", b"registry/2"), "format: Input should be"),
        (lambda d: d.replace(H1.encode(), b"xyz"), "hash: String should match pattern"),
        (lambda d: d[:-1], "Invalid JSON"),
    ],
)
def test_what_is_not_a_statement_is_refused_saying_where(change: object, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        Statement.parse(change(_head().encode()))  # type: ignore[operator]


def test_fields_belong_to_their_kind() -> None:
    with pytest.raises(ValueError, match="a chain statement has no `seq`"):
        Statement.model_validate({**dict(_head()), "kind": "chain", "closed": None})


def _signed(key: SigningKey, statement: Statement) -> Entry:
    data = statement.encode()
    return Entry(statement.number, data.decode(), key.sign(data))


def _log(key: SigningKey, count: int) -> list[Entry]:
    entries: list[Entry] = []
    prev = GENESIS
    for number in range(1, count + 1):
        entry = _signed(key, _head(number, prev=prev, seq=number, key_id=key.key_id))
        entries.append(entry)
        prev = entry.digest
    return entries


def test_replay_of_a_good_log() -> None:
    key = SigningKey.generate()
    registry = replay(_log(key, 5), [key.public])
    assert registry.findings == [] and registry.entries == 5
    assert registry.chains["eu-1-a"].signed_seq == 5 and registry.key_ids == {key.key_id}


def test_replay_finds_each_kind_of_broken_entry() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    entries = _log(key, 8)
    entries[1] = Entry(2, entries[1].statement, key.sign(b"something else"))  # bad signature
    entries[2] = _signed(other, Statement.parse(entries[2].statement).model_copy(update={"key_id": other.key_id}))
    del entries[4]  # entry 5 missing
    entries[5] = Entry(7, entries[5].statement.replace('"seq":7', '"seq":70'), entries[5].signature)  # altered
    found = {(f.kind, f.seq): f.detail for f in replay(entries, [key.public]).findings}
    assert found[("forged", 2)].startswith(f"its signature does not verify with {key.key_id}")
    assert found[("forged", 3)].startswith(f"signed by {other.key_id}, not one of the public keys given")
    assert found[("registry", 6)] == "entry 5 missing: the signed registry was cut"
    assert ("registry", 4) in found  # entry 3 re-signed is new bytes: entry 4's link to it breaks
    assert ("forged", 7) in found and ("registry", 8) in found  # altered: its signature and the next link
    assert len(found) == 6


def test_an_entry_moved_to_another_number_is_forged() -> None:
    key = SigningKey.generate()
    entries = _log(key, 2)
    moved = [entries[0], Entry(2, entries[1].statement.replace('"number":2', '"number":3'), entries[1].signature)]
    assert ("forged", 2) in {(f.kind, f.seq) for f in replay(moved, [key.public]).findings}


def test_concurrent_appends_stay_numbered_and_linked(db_url: str) -> None:
    """Four sealers (own connections, as four server processes have) append at once."""
    key = SigningKey.generate()
    sealers = [Sealer.open(db_url, key) for _ in range(4)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for seq in range(1, 16):
                sealers[n].head(f"chain-{n}", seq, H1 if seq % 2 else H2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sealer in sealers:
        sealer.close()
    assert errors == []
    engine = make_engine(db_url)
    entries = list(read_entries(engine))
    engine.dispose()
    assert [e.number for e in entries] == list(range(1, 61))
    registry = replay(entries, [key.public])
    assert registry.findings == []
    assert {c: s.signed_seq for c, s in registry.chains.items()} == {f"chain-{n}": 15 for n in range(4)}


def test_deleting_an_entry_in_the_middle_breaks_the_link(db_url: str, tmp_path: Path) -> None:
    key = SigningKey.generate()
    sealer = Sealer.open(db_url, key)
    for seq in range(1, 6):
        sealer.head("c", seq, H1)
    sealer.close()
    engine = make_engine(db_url)
    with engine.begin() as c:
        c.execute(delete(R).where(R.c.number == 3))
    assert [(f.kind, f.seq) for f in replay(read_entries(engine), [key.public]).findings] == [("registry", 4)]
    with engine.begin() as c:  # renumbering the rest does not help: entry 4's link names entry 3
        for number in (4, 5):
            c.execute(update(R).where(R.c.number == number).values(number=number - 1))
    found = {(f.kind, f.seq) for f in replay(read_entries(engine), [key.public]).findings}
    assert ("registry", 3) in found and ("forged", 3) in found  # broken link, and it says it is entry 4
    assert len(list(engine.connect().execute(select(R.c.number)))) == 4
    engine.dispose()
