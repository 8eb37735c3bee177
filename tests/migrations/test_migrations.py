"""The Alembic migrations: from empty to head, down to base and back, and no drift from the
models (what `alembic check` verifies), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bot.core.storage.db import MIGRATIONS_DIR, alembic_config, current_revision, make_engine
from bot.core.storage.tables import Base

TABLES = {
    "servers",
    "channels",
    "messages",
    "documents",
    "opt_outs",
    "trained_models",
    "model_authors",
    "training_runs",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_database_url: str) -> None:
    assert _tables(empty_database_url) == set()
    command.upgrade(alembic_config(empty_database_url), "head")
    assert _tables(empty_database_url) == TABLES


def test_downgrade_to_base_and_up_again(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert _tables(empty_database_url) == set()
    assert current_revision(empty_database_url) is None
    command.upgrade(config, "head")
    assert _tables(empty_database_url) == TABLES
    assert _differences(empty_database_url) == []


def test_every_revision_steps_down_and_up(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions("base", "heads"))
    for revision in reversed(revisions):  # oldest first
        command.upgrade(config, revision.revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision.revision)
    assert current_revision(empty_database_url) == revisions[0].revision


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    assert _differences(database_url) == []
    command.check(alembic_config(database_url))  # what `alembic check` runs


def test_tables_of_other_tools_are_ignored(database_url: str) -> None:
    # APScheduler's job store lives in the same database.
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY)"))
    finally:
        engine.dispose()
    command.check(alembic_config(database_url))


def test_env_takes_the_url_from_parrots_config_when_not_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARROT_DATABASE_URL", raising=False)
    monkeypatch.setenv("PARROT_DATA_DIR", str(tmp_path / "data"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    command.upgrade(config, "head")
    url = f"sqlite:///{tmp_path / 'data' / 'parrot.db'}"
    assert _tables(url) == TABLES


def test_offline_mode_writes_the_sql(tmp_path: Path) -> None:
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = f"sqlite:///{tmp_path / 'offline.db'}"
    command.upgrade(config, "head", sql=True)
    assert "CREATE TABLE messages" in buffer.getvalue()
