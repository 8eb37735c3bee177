"""Shared fixtures: real databases migrated with the real Alembic migrations.

- `database_url`: a migrated database, parametrised over "sqlite" (a file in tmp_path) and
  "postgres" (a fresh schema on the server named by PARROT_TEST_POSTGRES_URL, dropped after
  the test). Without that variable the postgres cases are skipped, except on CI (CI=true),
  where they fail: CI must test PostgreSQL (scripts/start_postgres.sh starts one).
- `sqlite_database_url`: the SQLite case only.
- `empty_database_url`: like `database_url` but never migrated (for migration tests).
- `engine`, `session_factory`, `session`: built on `database_url`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage.db import make_engine, make_session_factory, upgrade_to_head

POSTGRES_URL_ENV = "PARROT_TEST_POSTGRES_URL"
pytest_plugins = ["tests.fakediscord.fixtures"]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV, "")
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{POSTGRES_URL_ENV} is not set: CI must run the storage tests on PostgreSQL")
    pytest.skip(f"{POSTGRES_URL_ENV} is not set (run scripts/start_postgres.sh)")


@pytest.fixture
def _postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a new, empty schema; the schema is dropped afterwards."""
    base_url = _postgres_base_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            # A connection a test forgot to close would block the DROP forever.
            connection.execute(text("SET lock_timeout = '30s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrating once and copying the file keeps each test fast; the copy is still a
    # database built by the real migrations.
    path = tmp_path_factory.mktemp("sqlite-template") / "parrot.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_database_url(tmp_path: Path, _migrated_sqlite_template: Path) -> str:
    path = tmp_path / "data" / "parrot.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'parrot.db'}"
    return request.getfixturevalue("_postgres_schema_url")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database_url")
    url = request.getfixturevalue("_postgres_schema_url")
    upgrade_to_head(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session
        session.rollback()
