"""What verify reports: one Finding per break it found, in a chain or in the signed registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FindingKind = Literal[
    "edited",  # a row's content no longer matches its hash
    "deleted",  # rows missing inside a chain
    "inserted",  # rows added inside a chain
    "reordered",  # rows moved inside a chain
    "truncated",  # the chain ends before its signed head (or an anchored head)
    "rewritten",  # the row at a signed (or anchored) head has another hash: recomputed or renumbered rows
    "appended",  # rows after the head a chain was closed at
    "chain-deleted",  # a registered (or anchored) chain is gone
    "unsigned",  # a chain or prune checkpoint no signed statement vouches for
    "forged",  # a registry entry whose signature, key or content is wrong
    "registry",  # registry entries missing, inserted or reordered (a broken link)
    "rolled-back",  # the registry is behind what an anchor saw
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One break: in chain `chain_id` at `seq`, or (no chain_id) at registry entry `seq`."""

    kind: FindingKind
    chain_id: str
    seq: int
    detail: str

    def __str__(self) -> str:
        where = f"chain {self.chain_id} seq {self.seq}" if self.chain_id else f"registry entry {self.seq}"
        return f"{where}: {self.kind}: {self.detail}"
