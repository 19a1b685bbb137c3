"""The audit trail: every decision as a hash-chained SQL row, durable before the answer goes out.

Public surface (docs/architecture.md, "Audit"):

    writer = AuditWriter.open(url, chain_id=None, spool_dir=None)
    writer.record(AuditRecord(source="admission", decision=d, cluster="eu-1", ...))
    await writer.record_async(record); writer.spool_size(); writer.status(); writer.close()
    writer.durable_head()    # (seq, hash) of the newest row of its chain known to be in the database
    record_cli_decisions(url, decisions, cluster="eu-1")     # `policyengine check --audit`
"""

from policyengine.audit.cli_decisions import record_cli_decisions
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.record import AuditRecord
from policyengine.audit.writer import AuditStatus, AuditWriter

__all__ = ["AuditRecord", "AuditStatus", "AuditStoreError", "AuditWriter", "record_cli_decisions"]
