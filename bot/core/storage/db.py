"""Engines, sessions and migrations for Parrot's database.

One URL chooses the backend: SQLite (the default, a file under the data directory) or
PostgreSQL (`postgresql+psycopg://...`). The schema lives in `bot.core.storage.tables`; it is created
and changed only by the Alembic migrations in the top-level `migrations/` directory, which
run programmatically (no alembic.ini needed at run time) from `parrot db upgrade` and from
the bot at start-up.

SQLite connections are set up for a bot that writes from several threads while a trainer
reads: WAL journal (readers never block the writer), foreign keys enforced (so deleting a
server cascades), a busy timeout (a writer waits for the lock instead of failing), and
`BEGIN IMMEDIATE` transactions (see `make_engine`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import ConfigError

T = TypeVar("T")

# Where the Alembic environment lives: next to the `bot` package, both in a checkout
# (editable install) and in an installed wheel (`migrations` is packaged alongside `bot`).
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    begin_immediate: bool = True,
    foreign_keys: bool = True,
    **engine_kwargs: Any,
) -> Engine:
    """Create an engine for `url`; for SQLite, create the file's directory and set pragmas.

    SQLite only:
    - `busy_timeout_ms`: how long a connection waits for another writer's lock.
    - `begin_immediate`: start every transaction with `BEGIN IMMEDIATE`, taking the write
      lock up front. A deferred transaction that reads and then writes cannot wait for the
      lock (SQLite fails it at once with "database is locked" if another writer committed
      in between), so concurrent writers would lose work. Readers that keep a transaction
      open for long (a trainer streaming a big corpus) should pass False so they do not
      hold the write lock; in WAL mode a deferred reader never blocks writers.
    - `foreign_keys`: enforce foreign keys (ON DELETE CASCADE). Migrations turn it off,
      because batch mode recreates tables and a DROP with foreign keys on would cascade.
    """
    # Message text is user data: a failed statement's error (logged, sometimes shown) must
    # never carry its bound parameters.
    engine_kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **engine_kwargs)

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_kwargs)

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would issue its own
        # BEGIN lazily, and break SAVEPOINTs); `_begin` below issues BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                # With WAL, NORMAL never corrupts the database; a power cut can lose only
                # the last transactions. It makes each commit several times cheaper.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    begin_statement = "BEGIN IMMEDIATE" if begin_immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin_statement)

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (results cross thread boundaries)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """An Alembic Config for Parrot's migrations, built in code (no alembic.ini needed)."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigError(f"the database migrations are missing: {MIGRATIONS_DIR}/env.py")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Read by migrations/env.py; kept out of the ini options, where '%' is interpolated.
    config.attributes["database_url"] = url
    return config


def upgrade_to_head(url: str) -> None:
    """Apply every migration not yet applied (creates the schema on an empty database)."""
    command.upgrade(alembic_config(url), "head")


def downgrade(url: str, revision: str) -> None:
    """Migrate down to `revision` ("base" removes every table, "-1" goes one step back)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this version of Parrot."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def run_in_session(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction (`session_scope`) in a worker thread, so callers on the
    event loop never wait on the database."""

    def run() -> T:
        with session_scope(factory) as session:
            return work(session)

    return await asyncio.to_thread(run)
