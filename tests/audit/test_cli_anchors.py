"""The CLI around signatures: `audit keygen`, `verify --public-key/--against/--strict`, `audit anchor`,
`audit prune --signing-key`, and their bad input (exit 2, naming the file), on both backends."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from audit.decisions import mixed_records
from audit.signed_trail import write_signed_chain
from policyengine.audit import AuditWriter
from policyengine.audit.chain import row_hash
from policyengine.audit.schema import ROW_COLUMNS, audit_checkpoint, audit_decision
from policyengine.audit.signing import SigningKey
from policyengine.audit.store import make_engine
from policyengine.cli.main import app

runner = CliRunner()
T = audit_decision


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def keys(tmp_path: Path) -> tuple[SigningKey, Path, Path]:
    code, output = cli("audit", "keygen", "--out", str(tmp_path / "keys"))
    assert code == 0, output
    private, public = tmp_path / "keys" / "audit.key", tmp_path / "keys" / "audit.pub"
    return SigningKey.load(private), private, public


@pytest.fixture
def signed(db_url: str, keys: tuple[SigningKey, Path, Path], tmp_path: Path) -> str:
    """Chain a: 40 rows closed; chain b: 25 rows, killed after its checkpoint at seq 21 (4 unsigned)."""
    write_signed_chain(db_url, "a", 40, keys[0], tmp_path / "spool")
    write_signed_chain(db_url, "b", 25, keys[0], tmp_path / "spool", close=False)
    return db_url


def _truncate(url: str, chain_id: str, after: int) -> None:
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(delete(T).where(T.c.chain_id == chain_id, T.c.seq > after))
    engine.dispose()


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    code, output = cli("audit", "keygen", "--out", str(tmp_path / "k"))
    assert code == 0, output
    key = SigningKey.load(tmp_path / "k" / "audit.key")
    assert f"key id {key.key_id}" in output and "--audit-signing-key" in output
    assert stat.S_IMODE((tmp_path / "k" / "audit.key").stat().st_mode) == 0o600
    assert "BEGIN PUBLIC KEY" in (tmp_path / "k" / "audit.pub").read_text()
    code, output = cli("audit", "keygen", "--out", str(tmp_path / "k"))
    assert code == 2 and "already exist: pass --force" in output
    assert SigningKey.load(tmp_path / "k" / "audit.key").key_id == key.key_id  # untouched
    code, _ = cli("audit", "keygen", "--out", str(tmp_path / "k"), "--force")
    assert code == 0 and SigningKey.load(tmp_path / "k" / "audit.key").key_id != key.key_id


def test_verify_reports_signed_seq_and_unsigned_tail(signed: str, keys: tuple[SigningKey, Path, Path]) -> None:
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 0, output
    assert "chain a: 40 rows, seq 1..40," in output and "ok, signed through seq 40, closed" in output
    assert "ok, signed through seq 21; 4 rows after it unsigned" in output
    assert "verified: 65 rows in 2 chains;" in output and keys[0].key_id in output
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]), "--strict")
    assert code == 1 and "chain b seq 22: unsigned: 4 row(s) after the newest signed head" in output
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[1]))  # the private key works
    assert code == 0, output


def test_verify_without_a_key_names_the_key_the_trail_is_signed_with(
    signed: str, keys: tuple[SigningKey, Path, Path]
) -> None:
    code, output = cli("audit", "verify", "--db", signed)
    assert code == 3
    assert f"the registry holds 10 signed entries ({keys[0].key_id}): pass its public key with --public-key" in output


def test_bad_key_files_are_exit_2_naming_the_file(signed: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(junk))
    assert code == 2 and "junk.pub" in output and "keygen" in output and "Traceback" not in output
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(tmp_path / "missing.pub"))
    assert code == 2 and "missing.pub: cannot read the key" in output


def test_another_key_is_not_trusted(signed: str, tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "other.key", tmp_path / "other.pub")
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(tmp_path / "other.pub"))
    assert code == 1 and "not one of the public keys given" in output


def test_verify_against_an_export_manifest(signed: str, tmp_path: Path) -> None:
    """The heads an earlier export recorded catch a later truncation, with or without a key."""
    out = tmp_path / "export.jsonl"
    code, output = cli("audit", "export", "--db", signed, "--format", "jsonl", "--out", str(out))
    assert code == 0, output
    manifest = out.with_name(out.name + ".manifest.json")
    code, output = cli("audit", "verify", "--db", signed, "--against", str(manifest))
    assert code == 3 and "heads of 1 anchor(s)/manifest(s) hold" in output
    _truncate(signed, "b", 23)  # in b's unsigned tail: only the manifest saw rows 24 and 25
    code, output = cli("audit", "verify", "--db", signed, "--against", str(manifest))
    assert code == 1, output
    assert "TAMPERED: chain b seq 24: truncated: the chain ends at seq 23;" in output and "saw it at seq 25" in output
    broken = tmp_path / "broken.manifest.json"
    document = json.loads(manifest.read_text())
    document["chain_heads"][0]["hash"] = "nothex"
    broken.write_text(json.dumps(document))
    code, output = cli("audit", "verify", "--db", signed, "--against", str(broken))
    assert code == 2 and "broken.manifest.json: chain_heads.0.hash: String should match pattern" in output


def test_anchor_then_verify_against_it(signed: str, keys: tuple[SigningKey, Path, Path], tmp_path: Path) -> None:
    anchor = tmp_path / "witness" / "anchor.json"
    code, output = cli("audit", "anchor", "--db", signed, "--public-key", str(keys[2]), "--out", str(anchor))
    assert code == 0, output
    assert f"wrote {anchor}: 2 chain heads (2 signed)" in output
    document = json.loads(anchor.read_text())
    assert document["format"] == "policyengine-audit-anchor/1" and document["signatures_checked"] is True
    heads = {h["chain_id"]: h for h in document["chain_heads"]}
    assert heads["a"]["seq"] == 40 and heads["b"]["seq"] == 25
    assert keys[0].public.verify(heads["b"]["signed"]["statement"].encode(), heads["b"]["signed"]["signature"])
    assert document["registry"]["number"] == 10 and document["registry"]["entries"] == 10
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]), "--against", str(anchor))
    assert code == 0 and "heads of 1 anchor(s)/manifest(s) hold" in output
    forged = tmp_path / "forged.json"
    document["chain_heads"][0]["signed"]["statement"] = document["chain_heads"][0]["signed"]["statement"].replace(
        '"seq":40', '"seq":41'
    )
    forged.write_text(json.dumps(document))
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]), "--against", str(forged))
    assert code == 2 and "forged.json: chain_heads.0.signed: the signature does not verify" in output


def test_anchor_refuses_a_tampered_trail(signed: str, keys: tuple[SigningKey, Path, Path], tmp_path: Path) -> None:
    _truncate(signed, "a", 30)
    anchor = tmp_path / "anchor.json"
    code, output = cli("audit", "anchor", "--db", signed, "--public-key", str(keys[2]), "--out", str(anchor))
    assert code == 1 and "chain a seq 31: truncated" in output
    assert not anchor.exists()


def test_anchor_without_a_key_records_heads_and_says_it_proves_less(signed: str, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    code, output = cli("audit", "anchor", "--db", signed, "--out", str(anchor))
    assert code == 3 and "NOT PROVEN" in output and f"wrote {anchor}: 2 chain heads (0 signed)" in output
    document = json.loads(anchor.read_text())
    assert document["signatures_checked"] is False and document["registry"]["number"] == 10
    _truncate(signed, "a", 39)
    code, output = cli("audit", "verify", "--db", signed, "--against", str(anchor))
    assert code == 1 and "chain a seq 40: truncated" in output


def test_prune_of_a_signed_trail_needs_the_key_and_signs_its_checkpoints(
    signed: str, keys: tuple[SigningKey, Path, Path]
) -> None:
    code, output = cli("audit", "prune", "--db", signed, "--before", "2099-01-01")
    assert code == 2 and "the trail is signed (10 registry entries): give the signing key" in output
    code, output = cli("audit", "prune", "--db", signed, "--before", "2099-01-01", "--signing-key", str(keys[1]))
    assert code == 0, output
    assert "chain a: pruned 40 rows through seq 40" in output
    assert "chain b: pruned 21 rows through seq 21" in output  # no further than its signed head
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 0, output
    assert "chain a: 0 rows, seq 41..40" in output and "chain b: 4 rows, seq 22..25" in output
    engine = make_engine(signed)
    with engine.begin() as c:  # moving the checkpoint on, as if more had been pruned
        c.execute(delete(T).where(T.c.chain_id == "b", T.c.seq == 22))
        c.execute(update(audit_checkpoint).where(audit_checkpoint.c.chain_id == "b").values(seq=22))
    engine.dispose()
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 1 and "chain b seq 22: unsigned: the prune checkpoint (seq 22" in output


def test_prune_refuses_to_hide_tampering(signed: str, keys: tuple[SigningKey, Path, Path]) -> None:
    _truncate(signed, "a", 30)
    code, output = cli("audit", "prune", "--db", signed, "--before", "2099-01-01", "--signing-key", str(keys[1]))
    assert code == 2 and "pruning would hide them" in output and "truncated" in output
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 1 and "chain a seq 31: truncated" in output  # nothing was pruned


def test_an_unreachable_database_is_exit_2_with_the_url() -> None:
    code, output = cli("audit", "verify", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert code == 2 and "127.0.0.1:1/none" in output and "unreachable" in output
    code, output = cli("db", "upgrade", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert code == 2 and "migrating postgresql+psycopg://postgres@127.0.0.1:1/none failed" in output


def test_a_signed_prune_by_date(signed: str, keys: tuple[SigningKey, Path, Path]) -> None:
    """Rows are 7 minutes apart from 12:00: before 13:00 are seq 1..9 of each chain."""
    before = ("--before", "2025-03-01T13:00:00Z")
    code, output = cli("audit", "prune", "--db", signed, *before, "--signing-key", str(keys[1]))
    assert code == 0 and "chain a: pruned 9 rows through seq 9" in output and "chain b: pruned 9 rows" in output
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 0 and "chain a: 31 rows, seq 10..40" in output


def test_seal_signs_chains_written_before_the_key(
    db_url: str, keys: tuple[SigningKey, Path, Path], tmp_path: Path
) -> None:
    """A trail from before signing was configured (one chain pruned): verify with the key calls its
    chains unsigned until `audit seal` vouches for them; then tampering shows again."""
    with AuditWriter.open(db_url, chain_id="legacy", spool_dir=tmp_path / "spool") as writer:
        for record in mixed_records(20):
            writer.record(record)
    code, output = cli("audit", "prune", "--db", db_url, "--before", "2025-03-01T13:00:00Z")  # unsigned prune
    assert code == 0 and "pruned 9 rows" in output
    write_signed_chain(db_url, "new", 5, keys[0], tmp_path / "spool")
    code, output = cli("audit", "verify", "--db", db_url, "--public-key", str(keys[2]))
    assert code == 1 and "chain legacy seq 10: unsigned: no signed statement names this chain" in output
    code, output = cli("audit", "seal", "--db", db_url, "--signing-key", str(keys[1]))
    assert code == 0, output
    assert "chain legacy: signed as found, through seq 20" in output and "sealed 1 chain(s)" in output
    code, output = cli("audit", "verify", "--db", db_url, "--public-key", str(keys[2]))
    assert code == 0, output
    assert "chain legacy: 11 rows, seq 10..20," in output and "signed through seq 20" in output
    _truncate(db_url, "legacy", 15)
    code, output = cli("audit", "verify", "--db", db_url, "--public-key", str(keys[2]))
    assert code == 1 and "chain legacy seq 16: truncated" in output
    code, output = cli("audit", "seal", "--db", db_url, "--signing-key", str(keys[1]))
    assert code == 2 and "sealing would vouch for them" in output


def test_rows_forged_into_a_closed_empty_chain_are_appended(
    signed: str, keys: tuple[SigningKey, Path, Path], tmp_path: Path
) -> None:
    """A process that stopped without writing a row closed its chain at seq 0: a forged first row is
    caught like any row after a closed head."""
    write_signed_chain(signed, "idle", 0, keys[0], tmp_path / "spool")
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 0, output
    engine = make_engine(signed)
    with engine.begin() as c:
        columns = [T.c[name] for name in ROW_COLUMNS]
        row = dict(c.execute(select(*columns).where(T.c.chain_id == "a", T.c.seq == 1)).mappings().one())
        row.update(chain_id="idle", decision_id="forged")
        row["hash"] = row_hash(row)
        c.execute(insert(T).values(**row))
    engine.dispose()
    code, output = cli("audit", "verify", "--db", signed, "--public-key", str(keys[2]))
    assert code == 1 and "chain idle seq 1: appended: 1 row(s) after seq 0, where the chain was closed" in output
