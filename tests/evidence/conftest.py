"""The golden trails: GOLDEN_ROWS decisions (`golden.py`) in a SQLite file and in a PostgreSQL database
of this module's own (`pe_evidence_<uuid>` on 127.0.0.1:5432, dropped afterwards), each built once per
test session and worker, with the key that signed their heads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from evidence.golden import fill
from policyengine.audit.migrate import upgrade
from policyengine.audit.signing import SigningKey

GOLDEN_ROWS = 20_000
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@dataclass(frozen=True, slots=True)
class Golden:
    url: str
    rows: int
    private_key: Path
    public_key: Path


@pytest.fixture(scope="session")
def golden_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path, Path]:
    where = tmp_path_factory.mktemp("golden-key")
    key = SigningKey.generate()
    key.save(where / "audit.key", where / "audit.pub")
    return key, where / "audit.key", where / "audit.pub"


@pytest.fixture(scope="session")
def golden_sqlite(tmp_path_factory: pytest.TempPathFactory, golden_key: tuple[SigningKey, Path, Path]) -> Golden:
    where = tmp_path_factory.mktemp("golden-sqlite")
    url = f"sqlite:///{where / 'audit.db'}"
    upgrade(url)
    fill(url, GOLDEN_ROWS, golden_key[0], where / "spool")
    return Golden(url, GOLDEN_ROWS, golden_key[1], golden_key[2])


@pytest.fixture(scope="session")
def golden_postgres(
    tmp_path_factory: pytest.TempPathFactory, golden_key: tuple[SigningKey, Path, Path]
) -> Iterator[Golden]:
    name = f"pe_evidence_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required (scripts/system-deps.sh starts it): {exc}")
    try:
        url = PG_BASE + name
        upgrade(url)
        fill(url, GOLDEN_ROWS, golden_key[0], tmp_path_factory.mktemp("golden-pg") / "spool")
        yield Golden(url, GOLDEN_ROWS, golden_key[1], golden_key[2])
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def golden(request: pytest.FixtureRequest) -> Golden:
    value: Golden = request.getfixturevalue("golden_sqlite" if request.param == "sqlite" else "golden_postgres")
    return value
