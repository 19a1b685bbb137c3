"""The one error the audit trail raises: what failed, on which database, and what to do."""

from __future__ import annotations


class AuditStoreError(Exception):
    """The trail cannot take or give rows (unmigrated or unreachable database, unwritable spool...).

    The message says what failed, where (the database URL with any password hidden, or the spool file),
    and what to do about it.
    """
