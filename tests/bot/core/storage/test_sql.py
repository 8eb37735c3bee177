"""The SQL helpers shared by the store modules, on real databases where they touch one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from bot.core.errors import InvalidInput
from bot.core.storage.sql import (
    INSERT_CHUNK_ROWS,
    as_utc,
    check_snowflake,
    chunks,
    insert_ignore,
    iso,
    lock_collection,
)
from bot.core.storage.tables import OptOut, Server


def test_check_snowflake_accepts_the_signed_64_bit_range() -> None:
    check_snowflake(0, "id")
    check_snowflake(2**63 - 1, "id")
    for bad in (-1, 2**63, 1.0, "1", None, False):
        with pytest.raises(InvalidInput, match="thing id"):
            check_snowflake(bad, "thing id")


def test_as_utc_and_iso() -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    plus_one = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_utc(naive) == as_utc(plus_one) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert as_utc(plus_one) == plus_one
    assert as_utc(None) is None
    assert iso(naive) == "2026-01-01T12:00:00+00:00"
    assert iso(None) is None


def test_chunks() -> None:
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(chunks([], 3)) == []


def test_insert_ignore_counts_only_new_rows_across_chunks(session: Session) -> None:
    rows = [{"user_id": user, "server_id": 7} for user in range(1, INSERT_CHUNK_ROWS + 11)]
    assert insert_ignore(session, OptOut, rows, None) == len(rows)
    assert insert_ignore(session, OptOut, [*rows[:5], {"user_id": 0, "server_id": 7}], None) == 1
    assert insert_ignore(session, OptOut, [], None) == 0


def test_lock_collection_runs_for_ingest_and_either_opt_out_scope(session: Session) -> None:
    # Three scopes in one transaction: a holder of an advisory lock does not wait for itself.
    lock_collection(session, 1, exclusive=False)
    lock_collection(session, 2**63 - 1, exclusive=True)
    lock_collection(session, None, exclusive=True)
    assert insert_ignore(session, Server, [{"id": 1, "name": ""}], ["id"]) == 1
