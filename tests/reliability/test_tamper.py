"""Ten kinds of tampering against `policyengine audit verify`, on a fresh SQLite and PostgreSQL database.

The trail is written as the server writes it: an AuditWriter per chain with its head signer (a real
Ed25519 key, a checkpoint every 10 rows, the final head signed closed at a graceful stop). Then the
database is changed the way someone with write access to it, but without the signing key, would:

  edit, delete, insert, swap             the hash chain alone shows these (with or without a key);
  truncate, rewrite a suffix, renumber,  only the signed heads show these: with --public-key verify
  append after the head, forged prune    exits 1 naming the kind; without, it exits 3 and says it
  checkpoint, delete a chain             cannot detect them.

Each test also checks that the untouched trail verifies (exit 0) first, so a finding is the
tampering's doing. The last tests roll the registry back too (drop its newest entries along with the
rows): only an anchor kept outside the database (`audit anchor`, `verify --against`) shows that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from audit.signed_trail import write_signed_chain
from sqlalchemy import Connection, delete, func, insert, select, update
from typer.testing import CliRunner

from policyengine.audit.chain import row_hash
from policyengine.audit.migrate import upgrade
from policyengine.audit.schema import ROW_COLUMNS, audit_checkpoint, audit_decision, audit_registry
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.audit.store import make_engine
from policyengine.cli.main import app

T, C, R = audit_decision, audit_checkpoint, audit_registry
runner = CliRunner()
A_ROWS, B_ROWS = 60, 30


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of each backend."""
    url = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_empty_url")
    upgrade(url)
    return str(url)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[SigningKey, Path]:
    """The server's signing key, and the public key file an auditor is given."""
    key = SigningKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    return key, tmp_path / "audit.pub"


@pytest.fixture
def trail(fresh_url: str, keys: tuple[SigningKey, Path], tmp_path: Path) -> str:
    write_signed_chain(fresh_url, "replica-a", A_ROWS, keys[0], tmp_path / "spool")
    write_signed_chain(fresh_url, "replica-b", B_ROWS, keys[0], tmp_path / "spool")
    return fresh_url


def verify(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--db", url, *args])
    return result.exit_code, result.output


@pytest.fixture
def tampering(trail: str) -> Iterator[Callable[[Callable[[Connection], None]], None]]:
    """Run a change in one transaction on the trail's database."""
    engine = make_engine(trail)

    def run(change: Callable[[Connection], None]) -> None:
        with engine.begin() as connection:
            change(connection)

    yield run
    engine.dispose()


def _row(c: Connection, chain_id: str, seq: int) -> dict[str, Any]:
    columns = [T.c[name] for name in ROW_COLUMNS]
    return dict(c.execute(select(*columns).where(T.c.chain_id == chain_id, T.c.seq == seq)).mappings().one())


def _at(chain_id: str, seq: int) -> Any:
    return (T.c.chain_id == chain_id) & (T.c.seq == seq)


def _relink(c: Connection, chain_id: str, first: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite rows first.. of a chain through `change` and recompute every hash after them, as someone
    who knows the (public) hashing scheme would."""
    prev = _row(c, chain_id, first - 1)["hash"]
    last = int(c.execute(select(func.max(T.c.seq)).where(T.c.chain_id == chain_id)).scalar_one())
    for seq in range(first, last + 1):
        row = _row(c, chain_id, seq)
        change(row)
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
        c.execute(update(T).where(_at(chain_id, seq)).values(**row))


# -- the ten kinds -----------------------------------------------------------------------------------


def edit(c: Connection) -> None:
    c.execute(update(T).where(_at("replica-a", 20)).values(user="mallory"))


def delete_row(c: Connection) -> None:
    c.execute(delete(T).where(_at("replica-a", 20)))


def insert_row(c: Connection) -> None:
    for seq in range(A_ROWS, 20, -1):
        c.execute(update(T).where(_at("replica-a", seq)).values(seq=seq + 1))
    before = _row(c, "replica-a", 20)
    forged = dict(before, seq=21, prev_hash=before["hash"], decision_id="forged", decision="allow")
    forged["hash"] = row_hash(forged)
    c.execute(insert(T).values(**forged))


def swap(c: Connection) -> None:
    c.execute(update(T).where(_at("replica-a", 20)).values(seq=-20))
    c.execute(update(T).where(_at("replica-a", 30)).values(seq=20))
    c.execute(update(T).where(_at("replica-a", -20)).values(seq=30))


def truncate_last_25(c: Connection) -> None:
    c.execute(delete(T).where(T.c.chain_id == "replica-a", T.c.seq > A_ROWS - 25))


def rewrite_suffix(c: Connection) -> None:
    _relink(c, "replica-a", 40, lambda row: row.update(decision="allow", violations="[]"))


def delete_and_renumber(c: Connection) -> None:
    c.execute(delete(T).where(_at("replica-a", 30)))
    for seq in range(31, A_ROWS + 1):
        c.execute(update(T).where(_at("replica-a", seq)).values(seq=seq - 1))
    _relink(c, "replica-a", 30, lambda row: None)


def append_after_head(c: Connection) -> None:
    last = _row(c, "replica-a", A_ROWS)
    forged = dict(last, seq=A_ROWS + 1, prev_hash=last["hash"], decision_id="forged", decision="allow")
    forged["hash"] = row_hash(forged)
    c.execute(insert(T).values(**forged))


def prefix_behind_forged_checkpoint(c: Connection) -> None:
    through = _row(c, "replica-a", 20)
    c.execute(delete(T).where(T.c.chain_id == "replica-a", T.c.seq <= 20))
    now = datetime.now(UTC)
    c.execute(
        insert(C).values(
            chain_id="replica-a",
            seq=20,
            hash=through["hash"],
            pruned_rows=20,
            pruned_before=now,
            created_at=now,
            note="pruned rows through seq 20",
        )
    )


def delete_chain(c: Connection) -> None:
    c.execute(delete(T).where(T.c.chain_id == "replica-b"))


# (name, change, the finding verify names with the key, found without the key too)
KINDS = [
    ("edit", edit, "chain replica-a seq 20: edited", True),
    ("delete", delete_row, "chain replica-a seq 20: deleted", True),
    ("insert", insert_row, "chain replica-a seq 21: inserted", True),
    ("swap", swap, "chain replica-a seq 20: reordered", True),
    ("truncate the last 25 rows", truncate_last_25, "chain replica-a seq 36: truncated", False),
    ("rewrite a suffix, hashes recomputed", rewrite_suffix, f"chain replica-a seq {A_ROWS}: rewritten", False),
    ("delete a row, renumber, rehash", delete_and_renumber, f"chain replica-a seq {A_ROWS}: truncated", False),
    ("append a forged row after the head", append_after_head, f"chain replica-a seq {A_ROWS + 1}: appended", False),
    ("delete a prefix, forge a checkpoint", prefix_behind_forged_checkpoint, "chain replica-a seq 20: unsigned", False),
    ("delete a whole chain", delete_chain, "chain replica-b seq 30: chain-deleted", False),
]


@pytest.mark.parametrize(("name", "change", "finding", "without_key"), KINDS, ids=[k[0] for k in KINDS])
def test_each_kind_is_caught_with_the_key(
    name: str,
    change: Callable[[Connection], None],
    finding: str,
    without_key: bool,
    trail: str,
    keys: tuple[SigningKey, Path],
    tampering: Callable[[Callable[[Connection], None]], None],
) -> None:
    public = str(keys[1])
    code, output = verify(trail, "--public-key", public)
    assert code == 0, output
    assert "verified: 90 rows in 2 chains" in output and "signed through seq 60, closed" in output
    tampering(change)
    code, output = verify(trail, "--public-key", public)
    assert code == 1, f"{name} was not caught:\n{output}"
    assert f"TAMPERED: {finding}" in output, output
    code, unkeyed = verify(trail)
    if without_key:
        assert code == 1 and f"TAMPERED: {finding}" in unkeyed, unkeyed
    else:  # the hash chain alone cannot tell: verify says so and does not claim "verified"
        assert code == 3, unkeyed
        assert "hash chains verify" in unkeyed and "verified:" not in unkeyed
        assert "NOT PROVEN: without the signing key's public key (--public-key) verify cannot detect" in unkeyed


def test_ten_of_ten_kinds() -> None:
    """The figure docs/reliability.md records: every kind above is caught with the key."""
    assert len(KINDS) == 10 and len({k[0] for k in KINDS}) == 10
    assert sum(1 for k in KINDS if k[3]) == 4  # caught by the hash chain alone


def test_a_forged_registry_entry_is_caught(
    trail: str, keys: tuple[SigningKey, Path], tampering: Callable[[Callable[[Connection], None]], None]
) -> None:
    """Truncating the chain and rewriting its newest signed heads to match: the signatures break."""

    def forge(c: Connection) -> None:
        truncate_last_25(c)
        head = _stored_head_in(c, "replica-a")
        for number, statement in c.execute(select(R.c.number, R.c.statement)).all():
            document = json.loads(statement)
            if document["chain_id"] == "replica-a" and document["kind"] == "head" and document["seq"] > 35:
                document.update(seq=head[0], hash=head[1])
                c.execute(update(R).where(R.c.number == number).values(statement=json.dumps(document)))

    tampering(forge)
    code, output = verify(trail, "--public-key", str(keys[1]))
    assert code == 1
    assert "forged: its signature does not verify" in output


def test_a_key_of_ones_own_is_not_accepted(
    trail: str, keys: tuple[SigningKey, Path], tmp_path: Path, tampering: Callable[[Callable[[Connection], None]], None]
) -> None:
    """Re-signing a truncated chain's head with another key: verify names the unknown key."""
    mine = SigningKey.generate()

    def resign(c: Connection) -> None:
        truncate_last_25(c)

    tampering(resign)
    sealer = Sealer.open(trail, mine)
    head = _stored_head(trail, "replica-a")
    sealer.head("replica-a", *head, closed=True)
    sealer.close()
    code, output = verify(trail, "--public-key", str(keys[1]))
    assert code == 1
    assert f"signed by {mine.key_id}, not one of the public keys given" in output
    assert "chain replica-a seq 36: truncated" in output


def _stored_head(url: str, chain_id: str) -> tuple[int, str]:
    engine = make_engine(url)
    with engine.connect() as c:
        head = _stored_head_in(c, chain_id)
    engine.dispose()
    return head


def _stored_head_in(c: Connection, chain_id: str) -> tuple[int, str]:
    row = c.execute(select(T.c.seq, T.c.hash).where(T.c.chain_id == chain_id).order_by(T.c.seq.desc()).limit(1)).one()
    return int(row.seq), str(row.hash)


def _drop_newest_entries(c: Connection, chain_id: str) -> None:
    """Roll the registry back to before the chain's last checkpoints: drop every entry from the first
    head of the chain past seq 35 (the newest entries: what is left stays linked)."""
    entries = [(n, json.loads(s)) for n, s in c.execute(select(R.c.number, R.c.statement).order_by(R.c.number))]
    cut = next(n for n, s in entries if s["chain_id"] == chain_id and s["kind"] == "head" and s["seq"] > 35)
    c.execute(delete(R).where(R.c.number >= cut))


def test_a_rolled_back_registry_is_caught_only_against_an_anchor(
    trail: str, keys: tuple[SigningKey, Path], tmp_path: Path, tampering: Callable[[Callable[[Connection], None]], None]
) -> None:
    """Someone rolls the whole database back to a moment while chain a was at seq 35: its last 25 rows,
    every registry entry since its head passed seq 35, and so chain b (written after) all go. What is
    left is consistent, so verify with the key passes (it could be a restore from an older backup). An
    anchor taken before, kept by a witness, shows the rollback."""
    public = str(keys[1])
    anchor = tmp_path / "anchor.json"
    made = runner.invoke(app, ["audit", "anchor", "--db", trail, "--public-key", public, "--out", str(anchor)])
    assert made.exit_code == 0, made.output
    assert f"wrote {anchor}: 2 chain heads (2 signed)" in made.output

    def roll_back(c: Connection) -> None:
        truncate_last_25(c)
        delete_chain(c)
        _drop_newest_entries(c, "replica-a")

    tampering(roll_back)
    code, output = verify(trail, "--public-key", public)
    assert code == 0, output  # consistent without an outside reference: the docs say so
    code, output = verify(trail, "--public-key", public, "--against", str(anchor))
    assert code == 1, output
    assert "TAMPERED: chain replica-a seq 36: truncated: the chain ends at seq 35;" in output
    assert "TAMPERED: chain replica-b seq 30: chain-deleted: the chain is gone;" in output
    assert "rolled-back" in output and "its newest entries were dropped" in output
