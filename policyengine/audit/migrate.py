"""Alembic, configured in code: `upgrade` applies the packaged migrations (`policyengine/migrations/`);
`current_revision`/`head_revision` say where a database stands. No alembic.ini is needed."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from policyengine.audit.store import make_engine, resolve_url
from policyengine.resources import migrations

MIGRATIONS_DIR = migrations()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at `migrations/` and the resolved database URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest migration in `migrations/versions/`."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None when it has none)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | None = None, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to `revision`; returns (before, after)."""
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        config = alembic_config(url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        after = current_revision(engine)
    finally:
        engine.dispose()
    return before, after
