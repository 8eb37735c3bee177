"""Small SQL helpers shared by the corpus store modules (corpus, privacy, corpus_text)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.errors import InvalidInput
from bot.core.storage.tables import Server

MAX_SNOWFLAKE = 2**63 - 1  # ids are stored as signed 64-bit integers
# SQLite allows 32766 bound parameters per statement; a message row binds 6.
INSERT_CHUNK_ROWS = 1000
IN_CLAUSE_CHUNK = 500


def insert_ignore(
    session: Session,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    index_elements: list[str] | None,
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING in chunks; returns how many rows were new.

    Counting the RETURNING rows is exact on both backends, where `rowcount` of an
    executemany is not.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        insert: Any = sqlite.insert
    elif dialect == "postgresql":
        insert = postgresql.insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"unsupported database dialect: {dialect}")
    table = model.__table__
    primary_key = next(iter(table.primary_key.columns))
    statement = (
        insert(table).on_conflict_do_nothing(index_elements=index_elements).returning(primary_key)
    )
    inserted = 0
    for chunk in chunks(list(rows), INSERT_CHUNK_ROWS):
        inserted += len(session.execute(statement, chunk).all())
    return inserted


def lock_servers(session: Session, server_id: int | None, *, exclusive: bool) -> None:
    """Row-lock one server (or every server, for None) until the transaction ends.

    Ingest takes a shared lock and opt-outs an exclusive one, so on PostgreSQL an opt-out
    cannot slip between a batch's opt-out check and its insert. SQLite needs no row locks
    (a writer holds the whole database) and SQLAlchemy emits none there.
    """
    query = select(Server.id).order_by(Server.id).with_for_update(read=not exclusive)
    if server_id is not None:
        query = query.where(Server.id == server_id)
    session.execute(query).all()


def check_snowflake(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SNOWFLAKE:
        raise InvalidInput(f"{what} must be an integer between 0 and 2^63-1, got {value!r}")


def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC (naive values are taken to be UTC already)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return None if value is None else value.isoformat()


def rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
