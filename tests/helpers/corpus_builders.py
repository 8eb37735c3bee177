"""Shared builders for the corpus store tests: ids, messages, row counts, training runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.tables import Base, TrainingRun

SERVER = 111
OTHER_SERVER = 222
CHANNEL = 10
ALICE = 1001
BOB = 1002
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def msg(
    message_id: int,
    content: str = "",
    *,
    author: int = ALICE,
    channel: int = CHANNEL,
    created_at: datetime | None = None,
) -> IncomingMessage:
    return IncomingMessage(
        id=message_id,
        channel_id=channel,
        author_id=author,
        content=content or f"message {message_id}",
        created_at=created_at or T0 + timedelta(seconds=message_id),
    )


def count(session: Session, model: type[Base], *where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def add_run(
    session: Session, server_id: int, status: RunStatus, started_at: datetime | None
) -> TrainingRun:
    run = TrainingRun(
        server_id=server_id,
        trigger=RunTrigger.SCHEDULE,
        mode=RunMode.FINE_TUNE,
        arch="gru",
        status=status,
        started_at=started_at,
        requested_by=ALICE,
    )
    session.add(run)
    session.flush()
    return run
