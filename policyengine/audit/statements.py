"""What the audit signing key signs: the statements of the chain registry, defined once.

The registry (`registry.py`) is a log of signed statements about the hash chains:

- `chain`: a writer opened the chain (registered it: from now on the chain must exist);
- `head`: the chain's rows through (seq, hash) are in the database, as its writer wrote them;
  `closed` when the writer stopped gracefully with nothing left to ship (no row can follow);
- `prune`: the chain's rows through (seq, hash) were pruned (`pruned_rows` in all, older than
  `pruned_before`); verify starts the chain after it.

Each statement carries its place in the log (`number`, from 1) and the SHA-256 of the statement before
it (`prev`; GENESIS for the first), so an entry cannot be dropped, reordered or slipped in without
breaking a link, and the newest statement commits to every earlier one. `format` names this format and
version (and that the bytes are a registry statement: the same key signs other documents). `time` is
when it was signed, `key_id` the key that signed it.

Encoding: compact JSON, sorted keys, UTF-8, the time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; fields that do
not apply to a kind are left out. The Ed25519 signature covers exactly these bytes. The registry stores
the bytes themselves and verify checks the stored bytes, never a re-encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator

from policyengine.audit.chain import GENESIS, format_time

FORMAT: Literal["policyengine-audit-registry/1"] = "policyengine-audit-registry/1"
Kind = Literal["chain", "head", "prune"]
HEX64 = r"^[0-9a-f]{64}$"


class StatementError(ValueError):
    """Bytes that are not a registry statement: says what is wrong."""


_FIELDS_OF_KIND: dict[str, frozenset[str]] = {
    "chain": frozenset(),
    "head": frozenset({"seq", "hash", "closed"}),
    "prune": frozenset({"seq", "hash", "pruned_rows", "pruned_before"}),
}


class Statement(BaseModel):
    """One signed statement about a chain (see the module docstring for each kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    format: Literal["policyengine-audit-registry/1"] = FORMAT
    kind: Kind
    number: int = Field(ge=1)
    prev: str = Field(pattern=HEX64)
    chain_id: str = Field(min_length=1, max_length=64)
    seq: int | None = Field(default=None, ge=0)  # head, prune
    hash: str | None = Field(default=None, pattern=HEX64)  # head, prune
    time: datetime
    key_id: str = Field(min_length=1, max_length=64)
    closed: bool | None = None  # head only
    pruned_rows: int | None = Field(default=None, ge=0)  # prune only
    pruned_before: datetime | None = None  # prune only

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Statement:
        own = _FIELDS_OF_KIND[self.kind]
        for name in ("seq", "hash", "closed", "pruned_rows", "pruned_before"):
            if (getattr(self, name) is not None) != (name in own):
                need = "needs" if name in own else "has no"
                raise ValueError(f"a {self.kind} statement {need} `{name}`")
        if self.time.tzinfo is None or (self.pruned_before is not None and self.pruned_before.tzinfo is None):
            raise ValueError("times must carry their zone (UTC, ...Z)")
        return self

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of a head or prune statement."""
        assert self.seq is not None and self.hash is not None, f"a {self.kind} statement has no head"
        return self.seq, self.hash

    @field_serializer("time", "pruned_before")
    def _utc(self, value: datetime | None) -> str | None:
        return None if value is None else format_time(value)

    def encode(self) -> bytes:
        """The canonical bytes: what is signed, stored, and linked to by the next statement."""
        return orjson.dumps(self.model_dump(exclude_none=True), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def parse(cls, data: bytes | str) -> Statement:
        """The statement in `data`; StatementError says what is wrong with it."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "statement"
            raise StatementError(f"{where}: {first['msg']}") from None


def builder(kind: Kind, chain_id: str, key_id: str, **fields: object) -> Callable[[int, str], Statement]:
    """The statement to append, once the registry gives it its number and `prev` (`registry.append`);
    signed now, by `key_id`."""
    when = datetime.now(UTC)

    def build(number: int, prev: str) -> Statement:
        values = {"kind": kind, "number": number, "prev": prev, "chain_id": chain_id, "time": when, "key_id": key_id}
        return Statement.model_validate({**values, **fields})

    return build


def digest(data: bytes | str) -> str:
    """SHA-256 (hex) of a statement's stored bytes: the `prev` of the statement after it."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


FIRST_PREV = GENESIS  # `prev` of statement 1
