"""Engines, sessions and the programmatic migration helpers, on real databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage import corpus
from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.db import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_to_head,
)
from bot.core.storage.tables import Message, Server


def test_sqlite_engine_creates_the_directory_and_sets_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "parrot.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert path.exists()
    finally:
        engine.dispose()


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.begin() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_writers_take_the_lock_when_their_transaction_begins(
    sqlite_database_url: str,
) -> None:
    writer = make_engine(sqlite_database_url)
    waiting = make_engine(sqlite_database_url, busy_timeout_ms=50)
    reader = make_engine(sqlite_database_url, begin_immediate=False, busy_timeout_ms=50)
    try:
        with writer.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO servers (id, name, collecting, schedule_enabled, created_at) VALUES (1, '', 1, 1, '2026-01-01')"
                )
            )
            # A second writer cannot even begin while the first holds the lock...
            with pytest.raises(OperationalError, match="locked"), waiting.begin() as other:
                other.execute(text("SELECT 1"))
            # ...but a deferred reader can read, and does not see uncommitted rows (WAL).
            with reader.begin() as other:
                assert other.execute(text("SELECT count(*) FROM servers")).scalar() == 0
    finally:
        for engine in (writer, waiting, reader):
            engine.dispose()


def test_foreign_keys_cascade_from_servers(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        corpus.add_messages(session, 5, [IncomingMessage(1, 2, 3, "hello")])
    with session_scope(session_factory) as session:
        session.execute(delete(Server).where(Server.id == 5))
    with session_factory() as session:
        assert session.scalars(select(Message)).all() == []


def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        server = corpus.ensure_server(session, 7, "kept")
    assert server.name == "kept"  # still readable after commit (expire_on_commit=False)
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        corpus.ensure_server(session, 8)
        raise RuntimeError("boom")
    with factory() as session:
        assert session.get(Server, 7) is not None
        assert session.get(Server, 8) is None


def test_upgrade_current_and_downgrade(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None
    upgrade_to_head(empty_database_url)
    assert current_revision(empty_database_url) == head_revision() is not None
    engine = make_engine(empty_database_url)
    try:
        assert {"servers", "messages", "documents", "opt_outs"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
    downgrade(empty_database_url, "base")
    assert current_revision(empty_database_url) is None
    upgrade_to_head(empty_database_url)  # idempotent from any state
    upgrade_to_head(empty_database_url)
    assert current_revision(empty_database_url) == head_revision()


def test_a_failed_statement_never_shows_the_text_it_carried(engine: Engine) -> None:
    secret = "a private message nobody should see in a log"
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(
            text("INSERT INTO servers (id, name) VALUES (:id, :name), (:id, :name)"),
            {"id": 77, "name": secret},
        )
    # SQLAlchemy's part of the message never lists the parameters; what PostgreSQL itself
    # quotes ("Failing row contains …") is kept out of logs by bot.core.logs.
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    assert caught.value.statement is not None
