"""Holding the chains to what the signed registry says about them (verify with a public key).

The hash chain alone shows rows edited, deleted, inserted or reordered inside a chain. What it cannot
show, the registry's signed statements do:

- truncated: the chain ends before its newest signed head;
- rewritten: the row at the signed head's seq has another hash (a suffix recomputed, rows renumbered
  after a deletion: every row up to a signed head is bound by it);
- appended: rows after the head the chain was closed at;
- chain-deleted: a chain the registry vouches for has no row and no prune checkpoint left;
- unsigned: a chain no signed statement names, a prune checkpoint no signed prune statement matches
  (a deleted prefix behind a forged checkpoint).

Rows after a chain's newest signed head of a chain still open (the server signs every N rows and T
seconds; a killed process never signed its last ones) are counted as its unsigned tail, and are
findings only when `strict`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from policyengine.audit.chain import format_time
from policyengine.audit.findings import Finding
from policyengine.audit.registry import Registry, SignedChain
from policyengine.audit.verify_report import ChainHead, VerifyReport

StoredHash = Callable[[str, int], str | None]  # (chain_id, seq) -> the stored row's hash, if any


def judge(
    report: VerifyReport,
    registry: Registry,
    checkpoints: dict[str, tuple[int, str]],
    stored_hash: StoredHash,
    *,
    strict: bool = False,
) -> None:
    """Add to `report` what the signed registry contradicts; mark each chain's signed seq."""
    report.findings.extend(registry.findings)
    heads = {head.chain_id: head for head in report.chains}
    for chain_id, signed in registry.chains.items():
        findings = _judge_chain(signed, heads.get(chain_id), checkpoints.get(chain_id), stored_hash, report)
        report.findings.extend(findings)
        head = heads.get(chain_id)
        if head is not None:
            unsigned = max(0, head.last_seq - signed.signed_seq)
            if strict and unsigned and not findings:
                report.findings.append(
                    Finding(
                        "unsigned",
                        chain_id,
                        signed.signed_seq + 1,
                        f"{unsigned} row(s) after the newest signed head (seq {signed.signed_seq}): "
                        f"written after the last checkpoint, or appended without the key (--strict)",
                    )
                )
            heads[chain_id] = replace(
                head,
                signed_seq=signed.signed_seq,
                closed=signed.closed,
                verified=head.verified and not findings,
            )
    for chain_id, head in heads.items():
        if chain_id not in registry.chains:
            report.findings.append(
                Finding(
                    "unsigned",
                    chain_id,
                    head.first_seq,
                    "no signed statement names this chain: written without the signing key (e.g. before it "
                    "was configured), or added by someone without it",
                )
            )
            heads[chain_id] = replace(head, verified=False)
    report.chains = [heads[head.chain_id] for head in report.chains]


def _judge_chain(
    signed: SignedChain,
    head: ChainHead | None,
    checkpoint: tuple[int, str] | None,
    stored_hash: StoredHash,
    report: VerifyReport,
) -> list[Finding]:
    chain_id = signed.chain_id
    out: list[Finding] = []
    prune = signed.prune
    if prune is not None and checkpoint is not None and checkpoint != prune.head:
        out.append(
            Finding(
                "unsigned",
                chain_id,
                checkpoint[0],
                f"the prune checkpoint (seq {checkpoint[0]}, {checkpoint[1][:16]}…) is not the signed one "
                f"(seq {prune.head[0]}, {prune.head[1][:16]}…, pruned {_when(prune.time)}): forged",
            )
        )
    elif prune is None and checkpoint is not None:
        out.append(
            Finding(
                "unsigned",
                chain_id,
                checkpoint[0],
                f"no signed prune statement vouches for the prune checkpoint at seq {checkpoint[0]}: a prefix "
                f"was deleted and a checkpoint forged (or pruned without the signing key)",
            )
        )
    if head is None:
        if signed.signed_seq > 0:
            out.append(
                Finding(
                    "chain-deleted",
                    chain_id,
                    signed.signed_seq,
                    f"registered (registry entry {signed.registered_at}) and signed through seq "
                    f"{signed.signed_seq}, but no row and no prune checkpoint of it is left",
                )
            )
        elif signed.head is None:
            report.notes.append(
                f"chain {chain_id} was registered (registry entry {signed.registered_at}) but has no rows and "
                f"no signed head: its process stopped before its first row was signed (or the chain was "
                f"deleted within that time)"
            )
        return out
    if signed.head is None:
        return out
    seq, digest = signed.head.head
    at = _when(signed.head.time)
    if seq > head.last_seq:
        out.append(
            Finding(
                "truncated",
                chain_id,
                head.last_seq + 1,
                f"the chain ends at seq {head.last_seq}, but its head was signed at seq {seq} ({at}): "
                f"{seq - head.last_seq} row(s) removed from its end",
            )
        )
        return out
    if seq < head.first_seq - 1:
        return out  # pruned past the signed head: the signed prune statement vouches for the start
    if seq > 0:
        at_checkpoint = checkpoint is not None and seq == checkpoint[0]
        found = checkpoint[1] if checkpoint is not None and at_checkpoint else stored_hash(chain_id, seq)
        if found is not None and found != digest:
            out.append(
                Finding(
                    "rewritten",
                    chain_id,
                    seq,
                    f"the row at seq {seq} hashes to {found[:16]}…, its signed head ({at}) to {digest[:16]}…: "
                    f"rows up to it were rewritten (hashes recomputed, or rows renumbered after a deletion)",
                )
            )
            return out
    if signed.closed and head.last_seq > seq:
        out.append(
            Finding(
                "appended",
                chain_id,
                seq + 1,
                f"{head.last_seq - seq} row(s) after seq {seq}, where the chain was closed ({at}): "
                f"added by someone without the signing key",
            )
        )
    return out


def _when(value: datetime) -> str:
    return format_time(value)
