"""Writing a chain as the server does: an AuditWriter with its head signer (a checkpoint every
`every_rows` rows, the final head signed closed at a graceful stop, or left open)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from audit.decisions import mixed_records
from policyengine.audit import AuditWriter
from policyengine.audit.head_signer import HeadSigner
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey


def write_signed_chain(
    url: str,
    chain_id: str,
    rows: int,
    key: SigningKey,
    spool: Path,
    *,
    every_rows: int = 10,
    close: bool = True,
    start: datetime | None = None,
) -> None:
    """Write `rows` mixed decisions to a new chain, signing its head every `every_rows` rows; `close`:
    sign the final head closed (a graceful stop), else stop as a killed process would (unsigned tail)."""
    writer = AuditWriter.open(url, chain_id=chain_id, spool_dir=spool)
    signer = HeadSigner(writer, Sealer.open(url, key), every_rows=every_rows, every_seconds=3600)
    signer.tick()  # registered at start
    records = mixed_records(rows) if start is None else mixed_records(rows, start=start)
    for record in records:
        writer.record(record)
        signer.tick()
    writer.close()
    if close:
        signer.close()
    else:
        signer.sealer.close()
