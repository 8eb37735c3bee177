"""Alembic environment for Parrot.

The database URL comes from whoever runs the migrations:
1. `config.attributes["database_url"]`, set by `bot.core.storage.db` (`parrot db`, the bot, tests);
2. else `sqlalchemy.url` from an alembic.ini, if one sets it;
3. else Parrot's own config: `load_config($PARROT_CONFIG)`, which honours
   PARROT_DATABASE_URL and PARROT_DATA_DIR.

`render_as_batch=True` lets the same migrations alter tables on SQLite (copy-and-move).
Tables that are not Parrot's (APScheduler's job store shares the database) are ignored.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from alembic import context

from bot.core.config import load_config
from bot.core.storage.db import make_engine
from bot.core.storage.tables import Base, UtcDateTime

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    return load_config(os.environ.get("PARROT_CONFIG") or None).storage.resolved_database_url


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Only compare tables this schema owns; other tools' tables in the same database
    # (e.g. apscheduler_jobs) are none of Alembic's business.
    if type_ == "table":
        return name in target_metadata.tables or name == "alembic_version"
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations spell the column type the database sees, not our Python-side decorator.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=include_name,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # Foreign keys off while migrating: batch mode drops and recreates SQLite tables, and a
    # DROP TABLE with foreign keys on would cascade-delete the rows of the child tables.
    engine = make_engine(database_url(), foreign_keys=False)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,
                include_name=include_name,
                render_item=render_item,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
