"""What `verify` reports: each chain's head as found (and what signatures vouch for), every finding."""

from __future__ import annotations

from dataclasses import dataclass, field

from policyengine.audit.findings import Finding
from policyengine.audit.registry import Registry


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands: its last row (or its prune checkpoint when every row was pruned).

    With a public key: `signed_seq` is the highest seq a valid signature vouches for (rows after it
    are the chain's unsigned tail), `closed` whether the chain was closed there."""

    chain_id: str
    rows: int
    first_seq: int
    last_seq: int
    head_hash: str
    verified: bool
    signed_seq: int | None = None
    closed: bool = False

    @property
    def unsigned_rows(self) -> int | None:
        return None if self.signed_seq is None else max(0, self.last_seq - self.signed_seq)


@dataclass(slots=True)
class VerifyReport:
    """The outcome of a walk over every chain, and of the checks against signatures and anchors."""

    rows: int = 0
    chains: list[ChainHead] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    signatures_checked: bool = False  # a public key was given: the registry was checked
    registry_entries: int = 0
    registry_key_ids: list[str] = field(default_factory=list)  # keys named by the registry's entries
    against: list[str] = field(default_factory=list)  # the anchors / manifests compared with
    notes: list[str] = field(default_factory=list)  # what was seen but is not a break
    registry: Registry | None = field(default=None, repr=False)  # the replayed registry (with keys)

    @property
    def ok(self) -> bool:
        return not self.findings
