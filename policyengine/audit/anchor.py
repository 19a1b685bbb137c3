"""Anchors: the chain heads (and the registry's newest entry) written for a witness outside the
database, and holding the trail to them later (`verify --against`). An export manifest's chain heads
are read the same way.

`policyengine audit anchor --out FILE` writes, after a verify that passed:

    {"format": "policyengine-audit-anchor/1", "generator": "policyengine audit anchor",
     "generated_at": "2025-03-01T12:00:00.000000Z", "database": "...", "rows": 1200,
     "signatures_checked": true,
     "chain_heads": [{"chain_id": "eu-1-41-ab12cd34", "seq": 1200, "hash": "9f…",
                      "signed": {"number": 17, "statement": "{…}", "signature": "…"}}],
     "registry": {"entries": 17, "number": 17, "digest": "…", "statement": "{…}", "signature": "…"}}

`seq`/`hash` are each chain's head as verify found it; `signed` the newest head statement the
registry holds for it, as stored (its bytes and Ed25519 signature: a witness can check them with the
public key alone); `registry` the newest registry entry, which commits to every earlier one. A copy
kept where the database's owners cannot change it (object storage with retention, a timestamping
service) later shows a trail rolled back to an earlier state: fewer registry entries, a chain ending
before its anchored head, a row at an anchored head with another hash, a chain gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine

from policyengine.audit.chain import format_time
from policyengine.audit.findings import Finding
from policyengine.audit.registry import Entry, entry_at, registry_summary
from policyengine.audit.signing import VerifyKey
from policyengine.audit.statements import HEX64, Statement, StatementError, digest
from policyengine.audit.verify_report import VerifyReport

FORMAT = "policyengine-audit-anchor/1"
StoredHash = Callable[[str, int], str | None]


class AnchorFileError(ValueError):
    """An anchor or manifest file that cannot be used: which file, where in it, what is wrong."""


class _Signed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1)
    statement: str
    signature: str


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chain_id: str = Field(min_length=1)
    seq: int = Field(ge=0)
    hash: str = Field(pattern=HEX64)
    signed: _Signed | None = None


class _Registry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    entries: int = Field(ge=0)
    number: int = Field(ge=1)
    digest: str = Field(pattern=HEX64)
    statement: str | None = None
    signature: str | None = None


class _Document(BaseModel):
    """What an anchor and an export manifest share (a manifest's other fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    chain_heads: list[_Head]
    generated_at: str | None = None
    registry: _Registry | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """The heads an anchor or a manifest recorded, to hold the trail to."""

    source: str  # the file, and when it was made
    heads: tuple[tuple[str, int, str], ...]  # (chain_id, seq, hash), signed heads included
    registry: tuple[int, str] | None  # (number, digest) of the newest registry entry it saw


def read_reference(path: Path, keys: Sequence[VerifyKey] = ()) -> Reference:
    """The anchor or export manifest at `path`. With `keys`, every signed statement in it must verify
    (else the file is not what the server signed). Raises AnchorFileError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnchorFileError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        document = _Document.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise AnchorFileError(
            f"{path}: {where}: {first['msg']}; give an anchor (`policyengine audit anchor`) or an export "
            f"manifest (*.manifest.json)"
        ) from None
    by_id = {key.key_id: key for key in keys}
    heads: list[tuple[str, int, str]] = []
    for index, head in enumerate(document.chain_heads):
        heads.append((head.chain_id, head.seq, head.hash))
        if head.signed is not None:
            statement = _checked(path, f"chain_heads.{index}.signed", head.signed, by_id)
            if statement.chain_id != head.chain_id or statement.seq is None or statement.hash is None:
                raise AnchorFileError(f"{path}: chain_heads.{index}.signed: not a head of chain {head.chain_id}")
            heads.append((statement.chain_id, *statement.head))
    registry = None
    if document.registry is not None:
        reg = document.registry
        if reg.statement is not None:
            signed = _Signed(number=reg.number, statement=reg.statement, signature=reg.signature or "")
            _checked(path, "registry", signed, by_id)
            if digest(reg.statement) != reg.digest:
                raise AnchorFileError(f"{path}: registry.digest is not the digest of registry.statement")
        registry = (reg.number, reg.digest)
    when = f" of {document.generated_at}" if document.generated_at else ""
    return Reference(f"{path}{when}", tuple(dict.fromkeys(heads)), registry)


def _checked(path: Path, where: str, signed: _Signed, keys: dict[str, VerifyKey]) -> Statement:
    try:
        statement = Statement.parse(signed.statement)
    except StatementError as exc:
        raise AnchorFileError(f"{path}: {where}.statement: not a registry statement ({exc})") from None
    if statement.number != signed.number:
        raise AnchorFileError(f"{path}: {where}: the statement says it is entry {statement.number}")
    if keys:
        key = keys.get(statement.key_id)
        if key is None or not key.verify(signed.statement.encode(), signed.signature):
            raise AnchorFileError(
                f"{path}: {where}: the signature does not verify with the public keys given "
                f"({', '.join(sorted(keys))}): the file is not what the server signed"
            )
    return statement


def judge(
    report: VerifyReport,
    reference: Reference,
    checkpoints: dict[str, tuple[int, str]],
    stored_hash: StoredHash,
    engine: Engine,
) -> None:
    """Add to `report` every head of `reference` the trail no longer holds (and mark those chains)."""
    report.against.append(reference.source)
    before = len(report.findings)
    _judge_heads(report, reference, checkpoints, stored_hash)
    broken = {finding.chain_id for finding in report.findings[before:]}
    report.chains = [replace(h, verified=False) if h.chain_id in broken else h for h in report.chains]
    if reference.registry is not None:
        _judge_registry(report, reference, engine)


def _judge_heads(
    report: VerifyReport, reference: Reference, checkpoints: dict[str, tuple[int, str]], stored_hash: StoredHash
) -> None:
    heads = {head.chain_id: head for head in report.chains}
    source = reference.source
    for chain_id, seq, expected in reference.heads:
        head = heads.get(chain_id)
        if head is None:
            report.findings.append(
                Finding("chain-deleted", chain_id, seq, f"the chain is gone; {source} saw it at seq {seq}")
            )
            continue
        if seq > head.last_seq:
            report.findings.append(
                Finding(
                    "truncated",
                    chain_id,
                    head.last_seq + 1,
                    f"the chain ends at seq {head.last_seq}; {source} saw it at seq {seq}: "
                    f"{seq - head.last_seq} row(s) removed from its end",
                )
            )
            continue
        if seq < head.first_seq - 1:
            report.notes.append(f"chain {chain_id}: pruned past seq {seq}, which {source} saw: not compared")
            continue
        checkpoint = checkpoints.get(chain_id)
        found = checkpoint[1] if checkpoint is not None and checkpoint[0] == seq else stored_hash(chain_id, seq)
        if found is not None and found != expected and seq > 0:
            report.findings.append(
                Finding(
                    "rewritten",
                    chain_id,
                    seq,
                    f"the row at seq {seq} hashes to {found[:16]}…; {source} saw {expected[:16]}…: "
                    f"rows up to it were rewritten",
                )
            )


def _judge_registry(report: VerifyReport, reference: Reference, engine: Engine) -> None:
    assert reference.registry is not None
    source, (number, expected) = reference.source, reference.registry
    entry = entry_at(engine, number)
    if entry is None:
        entries, _ = registry_summary(engine)
        report.findings.append(
            Finding(
                "rolled-back",
                "",
                number,
                f"the signed registry has {entries} entries; {source} saw entry {number}: "
                f"its newest entries were dropped",
            )
        )
    elif entry.digest != expected:
        report.findings.append(
            Finding(
                "rolled-back",
                "",
                number,
                f"entry {number} hashes to {entry.digest[:16]}…; {source} saw {expected[:16]}…: "
                f"the registry was replaced from there",
            )
        )


def anchor_document(report: VerifyReport, database: str, newest: Entry | None) -> dict[str, Any]:
    """The anchor of a trail `report` verified (with the registry's newest entry, if any)."""
    signed = report.registry.chains if report.registry is not None else {}
    heads = []
    for head in report.chains:
        entry = signed[head.chain_id].head_entry if head.chain_id in signed else None
        heads.append(
            {
                "chain_id": head.chain_id,
                "seq": head.last_seq,
                "hash": head.head_hash,
                "signed": None
                if entry is None
                else {"number": entry.number, "statement": entry.statement, "signature": entry.signature},
            }
        )
    registry = None
    if newest is not None:
        registry = {
            "entries": report.registry_entries,
            "number": newest.number,
            "digest": newest.digest,
            "statement": newest.statement,
            "signature": newest.signature,
        }
    return {
        "format": FORMAT,
        "generator": "policyengine audit anchor",
        "generated_at": format_time(datetime.now(UTC)),
        "database": database,
        "rows": report.rows,
        "signatures_checked": report.signatures_checked,
        "chain_heads": heads,
        "registry": registry,
    }


def write_anchor(out: Path, document: dict[str, Any]) -> None:
    """Write the anchor to `out` (through a temporary file and a rename: never half a file)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
