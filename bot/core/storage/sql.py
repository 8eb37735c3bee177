"""Small SQL helpers shared by the corpus store modules (corpus, privacy, corpus_text)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.errors import InvalidInput

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


# Advisory lock keys (two int4s: a namespace, then an id) for `lock_collection`. The
# namespaces spell "Par\0" and "Par\1", so other users of advisory locks in the same
# database are unlikely to collide; a collision would only make someone wait, never lose data.
_LOCK_ALL_SERVERS = 0x50617200  # one key: every server at once
_LOCK_ONE_SERVER = 0x50617201  # one key per server id, folded to 32 bits


def lock_collection(session: Session, server_id: int | None, *, exclusive: bool) -> None:
    """Serialise storing a user's words with opting out, until the transaction ends.

    Ingest (`exclusive=False`, one server) takes the "all servers" key and that server's
    key, both shared, before it creates the server row and checks the opt-outs; an opt-out
    takes its scope's key exclusively (None: the "all servers" key) before it records the
    opt-out and purges. So an opt-out waits for batches already past their check, and a
    batch that starts later waits for the opt-out to commit and then sees it.

    PostgreSQL transaction-level advisory locks, not row locks on `servers`: a row lock
    only covers rows that exist, and a batch for a server seen for the first time creates
    its row in a transaction the opt-out cannot see (issue #12). Relies on READ COMMITTED
    (the default): each statement after the wait sees what the other side committed.
    Ingest takes its two keys in a fixed order and opt-outs one, so they cannot deadlock.
    SQLite needs nothing: `BEGIN IMMEDIATE` gives each writer the whole database.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    keys: list[tuple[int, int]] = []
    if server_id is None or not exclusive:
        keys.append((_LOCK_ALL_SERVERS, 0))
    if server_id is not None:
        folded = (server_id ^ (server_id >> 32)) & 0xFFFFFFFF
        keys.append((_LOCK_ONE_SERVER, folded - 2**32 if folded >= 2**31 else folded))
    for namespace, key in keys:
        session.execute(
            text(f"SELECT {lock}(:namespace, :key)"), {"namespace": namespace, "key": key}
        )


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
