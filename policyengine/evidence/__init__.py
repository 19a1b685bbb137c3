"""Evidence a DPO can use: the transfer record, the report that reads in minutes, the audit page's data.

It sits above the audit trail (read through `AuditTrail`, no SQL here) and the policy (bases are
re-derived with the rules' `explain` for the revision each row names). `run` writes the files and their
signed manifests; `render` turns the models (`report`, `transfers`) into HTML, PDF, CSV and JSON.
"""
