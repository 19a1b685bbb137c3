"""The audit trail as its commands use it: one database opened by URL and every operation the CLI runs
on it, with every database error turned into an AuditStoreError that says what failed, on which
database, and what to do. Nothing outside `policyengine/audit/` talks SQL: the CLI calls this.

    with AuditTrail.open(url) as trail:           # refuses an unmigrated or unreachable database
        report = trail.verify(keys=[VerifyKey.load(path)], against=[trail.reference(manifest)])
        trail.export("csv", Path("out.csv"), ExportFilter(...))
        trail.prune(cutoff, key=SigningKey.load(path))
        trail.anchor(Path("anchor.json"), keys=[...])
        trail.seal_unsigned(SigningKey.load(path))  # chains written before the key was configured
    upgrade_database(url)                          # Alembic migrations: (before, after)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from policyengine.audit.anchor import Reference, anchor_document, read_reference, write_anchor
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.export.run import ExportResult, export
from policyengine.audit.migrate import upgrade
from policyengine.audit.prune import Pruned, prune
from policyengine.audit.query import ExportFilter, count_rows
from policyengine.audit.registry import newest_entry
from policyengine.audit.sealer import seal_unsigned
from policyengine.audit.signing import SigningKey, VerifyKey
from policyengine.audit.store import display_url, make_engine, require_migrated, resolve_url
from policyengine.audit.verify import total_rows, verify
from policyengine.audit.verify_report import ChainHead, VerifyReport

Progress = Callable[[int], None] | None


class AuditTrail:
    """An audit database opened for the CLI's commands (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.where = display_url(engine.url.render_as_string(hide_password=False))

    @classmethod
    def open(cls, url: str | None) -> AuditTrail:
        """The trail at `url` (default $POLICYENGINE_AUDIT_DB or ./var/audit.db), migrated to this version."""
        engine = make_engine(url)
        try:
            require_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, psycopg.Error) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise AuditStoreError(
                f"audit database {self.where}: {doing} failed: {reason[0] if reason else type(exc).__name__}; "
                f"check that it is reachable and migrated (`policyengine db upgrade --db {self.where}`)"
            ) from exc

    def total_rows(self) -> int:
        with self._errors("counting the rows"):
            return total_rows(self.engine)

    def count_rows(self, flt: ExportFilter) -> int:
        with self._errors("counting the rows"):
            return count_rows(self.engine, flt)

    def verify(
        self,
        progress: Progress = None,
        *,
        keys: Sequence[VerifyKey] = (),
        against: Sequence[Reference] = (),
        strict: bool = False,
    ) -> VerifyReport:
        with self._errors("verifying"):
            return verify(self.engine, progress, keys=keys, against=against, strict=strict)

    def export(
        self,
        fmt: str,
        out: Path,
        flt: ExportFilter,
        *,
        verify_chains: bool | None = None,
        progress: Progress = None,
        reports: str | None = None,
    ) -> ExportResult:
        with self._errors(f"exporting {fmt}"):
            return export(self.engine, fmt, out, flt, verify_chains=verify_chains, progress=progress, reports=reports)

    def prune(self, before: datetime, *, key: SigningKey | None = None, keys: Sequence[VerifyKey] = ()) -> list[Pruned]:
        with self._errors("pruning"):
            return prune(self.engine, before, key=key, keys=keys)

    def anchor(self, out: Path, *, keys: Sequence[VerifyKey] = (), progress: Progress = None) -> VerifyReport:
        """Verify, and when nothing is found write the anchor to `out`; the report either way."""

        with self._errors("anchoring"):
            report = verify(self.engine, progress, keys=keys)
            if not report.ok:
                return report
            with self.engine.connect() as connection:
                newest = newest_entry(connection)
            document = anchor_document(report, self.where, newest)
        try:
            write_anchor(out, document)
        except OSError as exc:
            raise AuditStoreError(f"cannot write the anchor {out}: {exc.strerror}; choose another --out") from exc
        return report

    def seal_unsigned(self, key: SigningKey, *, keys: Sequence[VerifyKey] = ()) -> list[ChainHead]:
        """Sign the chains no signed statement names yet, as they are (see `sealer.seal_unsigned`)."""
        with self._errors("sealing"):
            return seal_unsigned(self.engine, key, keys)

    @staticmethod
    def reference(path: Path, keys: Sequence[VerifyKey] = ()) -> Reference:
        """The anchor or export manifest at `path` (AnchorFileError says what is wrong with it)."""
        return read_reference(path, keys)


def upgrade_database(url: str | None) -> tuple[str | None, str | None]:
    """Apply the migrations to the database at `url`: (revision before, revision after)."""
    where = display_url(resolve_url(url))
    try:
        return upgrade(url)
    except AuditStoreError:
        raise
    except Exception as exc:  # Alembic and driver errors: say which database and what to check
        raise AuditStoreError(f"migrating {where} failed: {exc}") from exc
