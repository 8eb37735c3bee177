"""Privacy: opt-outs and purges for the corpus store (data export: `bot.core.storage.export`).

Opting out (in one server, or everywhere) stops collection of a user's messages and uploads
and deletes what they already gave in that scope. Purging deletes a user's (or a whole
server's) rows. Like the rest of the store, functions take the caller's `Session` and
never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.core.storage.sql import (
    IN_CLAUSE_CHUNK,
    check_snowflake,
    chunks,
    insert_ignore,
    lock_collection,
    rowcount,
)
from bot.core.storage.tables import (
    EVERYWHERE,
    Channel,
    Document,
    Message,
    OptOut,
    Server,
    TrainedModel,
    TrainingRun,
)


@dataclass(frozen=True)
class PurgeCounts:
    messages: int = 0
    documents: int = 0
    models: int = 0  # trained models retired because they learned from what was deleted

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(
            self.messages + other.messages,
            self.documents + other.documents,
            self.models + other.models,
        )


def opt_out(session: Session, user_id: int, server_id: int | None = None) -> PurgeCounts:
    """Stop collecting a user in one server (or everywhere: None or EVERYWHERE) and remove
    what they gave there."""
    check_snowflake(user_id, "user id")
    if server_id == EVERYWHERE:
        server_id = None
    scope = EVERYWHERE if server_id is None else server_id
    with session.begin_nested():
        # Waits for batches and uploads being stored in that scope, new servers included
        # (PostgreSQL), so none of them can store this user's words after the purge below.
        lock_collection(session, server_id, exclusive=True)
        insert_ignore(session, OptOut, [{"user_id": user_id, "server_id": scope}], None)
        return purge_user(session, user_id, server_id)


def opt_in(session: Session, user_id: int, server_id: int | None = None) -> bool:
    """Undo `opt_out` for the same scope; returns whether there was an opt-out to remove.

    Opting in to one server does not lift an opt-out "everywhere".
    """
    scope = EVERYWHERE if server_id is None else server_id
    result = session.execute(
        delete(OptOut)
        .where(OptOut.user_id == user_id, OptOut.server_id == scope)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return rowcount(result) > 0


def is_opted_out(session: Session, user_id: int, server_id: int | None = None) -> bool:
    """Whether the user opted out in this server or everywhere (None: everywhere only)."""
    scopes = [EVERYWHERE] if server_id is None else [EVERYWHERE, server_id]
    found = session.scalar(
        select(OptOut.user_id).where(OptOut.user_id == user_id, OptOut.server_id.in_(scopes))
    )
    return found is not None


def purge_user(session: Session, user_id: int, server_id: int | None = None) -> PurgeCounts:
    """Delete a user's messages and uploads in one server (None or EVERYWHERE: all).

    Their id is also cleared from channel and training-run records. Opt-outs are kept:
    they are the user's standing request not to be collected.
    """
    if server_id == EVERYWHERE:
        server_id = None
    scope_messages = [Message.author_id == user_id]
    scope_documents = [Document.uploader_id == user_id]
    scope_channels = [Channel.added_by == user_id]
    scope_runs = [TrainingRun.requested_by == user_id]
    if server_id is not None:
        scope_messages.append(Message.server_id == server_id)
        scope_documents.append(Document.server_id == server_id)
        scope_channels.append(Channel.server_id == server_id)
        scope_runs.append(TrainingRun.server_id == server_id)
    with session.begin_nested():
        messages = session.execute(
            delete(Message).where(*scope_messages).execution_options(synchronize_session=False)
        )
        documents = session.execute(
            delete(Document).where(*scope_documents).execution_options(synchronize_session=False)
        )
        session.execute(
            update(Channel)
            .where(*scope_channels)
            .values(added_by=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(TrainingRun)
            .where(*scope_runs)
            .values(requested_by=None)
            .execution_options(synchronize_session=False)
        )
    session.expire_all()  # ORM objects loaded earlier may show deleted/cleared values
    return PurgeCounts(messages=rowcount(messages), documents=rowcount(documents))


def purge_server(session: Session, server_id: int) -> dict[str, int]:
    """Delete every row that belongs to a server (its opt-outs too); returns counts per table.

    Checkpoint files on disk are not touched here (the model registry owns them).
    """
    counts: dict[str, int] = {}
    with session.begin_nested():
        # Children first, so the result does not depend on the foreign-key cascade.
        for table in (TrainedModel, TrainingRun, Message, Document, Channel, OptOut):
            result = session.execute(
                delete(table)
                .where(table.server_id == server_id)
                .execution_options(synchronize_session=False)
            )
            counts[table.__tablename__] = rowcount(result)
        result = session.execute(
            delete(Server)
            .where(Server.id == server_id)
            .execution_options(synchronize_session=False)
        )
        counts[Server.__tablename__] = rowcount(result)
    session.expire_all()
    return counts


def opted_out_among(session: Session, server_id: int, user_ids: Iterable[int]) -> set[int]:
    """Which of `user_ids` opted out in this server or everywhere."""
    found: set[int] = set()
    for chunk in chunks(sorted(set(user_ids)), IN_CLAUSE_CHUNK):
        found.update(
            session.scalars(
                select(OptOut.user_id).where(
                    OptOut.server_id.in_([server_id, EVERYWHERE]), OptOut.user_id.in_(chunk)
                )
            )
        )
    return found


def servers_holding(session: Session, user_id: int, server_id: int | None = None) -> set[int]:
    """The servers (one, or all: None) whose corpus holds messages or uploads of the user."""
    messages = select(Message.server_id).where(Message.author_id == user_id)
    documents = select(Document.server_id).where(Document.uploader_id == user_id)
    if server_id is not None and server_id != EVERYWHERE:
        messages = messages.where(Message.server_id == server_id)
        documents = documents.where(Document.server_id == server_id)
    return {int(found) for found in session.scalars(messages.union(documents))}


def bump_privacy_epochs(session: Session, server_ids: Iterable[int]) -> None:
    """Start a new privacy epoch in these servers: a training run planned in an earlier one
    may have read what is being forgotten, so its model is discarded (`training.outcome`).
    Also row-locks the servers (PostgreSQL) until the transaction ends, which serialises
    the request with a run's activation."""
    for chunk in chunks(sorted(set(server_ids)), IN_CLAUSE_CHUNK):
        session.execute(
            update(Server)
            .where(Server.id.in_(chunk))
            .values(privacy_epoch=Server.privacy_epoch + 1)
            .execution_options(synchronize_session=False)
        )
