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

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from policyengine.audit import aggregates
from policyengine.audit.anchor import Reference, anchor_document, read_reference, write_anchor
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.export.run import ExportResult, export
from policyengine.audit.migrate import upgrade
from policyengine.audit.prune import Pruned, prune
from policyengine.audit.query import ExportFilter, Head, chain_heads, count_rows, validated
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

    def checked_filter(
        self, flt: ExportFilter, regimes: Iterable[str] = (), clusters: Iterable[str] = ()
    ) -> ExportFilter:
        """`flt` with its regime in the known casing, or AuditStoreError listing the valid regimes and
        clusters (those the trail holds, plus `regimes` and `clusters` from the policy)."""
        with self._errors("reading the known regimes and clusters"), self.engine.connect() as connection:
            held_regimes, held_clusters = aggregates.known_values(connection)
        return validated(flt, held_regimes | set(regimes), held_clusters | set(clusters))

    def known_values(self) -> tuple[set[str], set[str]]:
        with self._errors("reading the known regimes and clusters"), self.engine.connect() as connection:
            return aggregates.known_values(connection)

    def evidence(
        self, flt: ExportFilter
    ) -> tuple[
        aggregates.Totals, list[aggregates.Group], list[aggregates.Group], list[tuple[str, datetime, datetime, int]]
    ]:
        """The aggregates of the evidence report (`aggregates.evidence_queries`)."""
        with self._errors("aggregating the report"):
            return aggregates.evidence_queries(self.engine, flt)

    def totals(self, flt: ExportFilter) -> aggregates.Totals:
        with self._errors("counting"), self.engine.connect() as connection:
            return aggregates.totals(connection, flt.where())

    def rows_page(
        self, flt: ExportFilter, *, limit: int, offset: int = 0, flagged: bool = False
    ) -> list[dict[str, Any]]:
        """A page of rows, newest first (only those with violations when `flagged`)."""
        where = aggregates.and_not_flagged(flt.where(), True) if flagged else flt.where()
        with self._errors("reading decisions"), self.engine.connect() as connection:
            return aggregates.rows_page(connection, where, limit=limit, offset=offset)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        with self._errors("reading a decision"), self.engine.connect() as connection:
            return aggregates.one_decision(connection, decision_id)

    def chain_heads(self) -> list[Head]:
        with self._errors("reading the chain heads"):
            return chain_heads(self.engine)

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
        signing_key: SigningKey | None = None,
    ) -> ExportResult:
        with self._errors(f"exporting {fmt}"):
            return export(
                self.engine,
                fmt,
                out,
                flt,
                verify_chains=verify_chains,
                progress=progress,
                reports=reports,
                signing_key=signing_key,
            )

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
