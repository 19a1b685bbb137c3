"""Recording the decisions of `policyengine check --audit` (source `cli`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from policyengine.audit.head_signer import HeadSigner
from policyengine.audit.record import AuditRecord
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.audit.writer import AuditWriter
from policyengine.decision import Decision


def record_cli_decisions(
    url: str | None,
    decisions: Iterable[AuditRecord | Decision],
    *,
    cluster: str = "",
    user: str = "",
    spool_dir: str | Path | None = None,
    signing_key: SigningKey | None = None,
) -> int:
    """Record `decisions` in the trail at `url` (default ./var/audit.db) with source `cli`.

    Items may be AuditRecords (e.g. `AuditRecord.for_manifest(decision, manifest, cluster=...)`; their
    source is forced to `cli`) or bare Decisions (recorded with `cluster` and `user`). Returns how many
    rows were recorded. With `signing_key`, the new chain is registered and its head signed, closed, in
    the registry. Raises AuditStoreError (unmigrated/unreachable database, unwritable spool).
    """
    count = 0
    sealer = Sealer.open(url, signing_key) if signing_key is not None else None
    try:
        with AuditWriter.open(url, spool_dir=spool_dir) as writer:
            for item in decisions:
                if isinstance(item, Decision):
                    record = AuditRecord(source="cli", decision=item, cluster=cluster, user=user)
                else:
                    record = _as_cli(item)
                writer.record(record)
                count += 1
    except BaseException:
        if sealer is not None:
            sealer.close()
        raise
    if sealer is not None:
        HeadSigner(writer, sealer).close()  # its final checkpoint: the chain's head, closed
    return count


def _as_cli(record: AuditRecord) -> AuditRecord:
    if record.source == "cli":
        return record
    return AuditRecord(
        source="cli",
        decision=record.decision,
        cluster=record.cluster,
        operation=record.operation,
        api_version=record.api_version,
        kind=record.kind,
        namespace=record.namespace,
        name=record.name,
        service=record.service,
        source_cluster=record.source_cluster,
        destination_cluster=record.destination_cluster,
        dry_run=record.dry_run,
        user=record.user,
        input=record.input,
        time=record.time,
    )
