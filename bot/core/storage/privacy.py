"""Privacy: opt-outs, purges and data export for the corpus store.

Opting out (in one server, or everywhere) stops collection of a user's messages and uploads
and deletes what they already gave in that scope. Purging deletes a user's (or a whole
server's) rows; exporting gathers everything stored about a user as JSON-ready data.
Like the rest of the store, functions take the caller's `Session` and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.core.storage.sql import (
    IN_CLAUSE_CHUNK,
    check_snowflake,
    chunks,
    insert_ignore,
    iso,
    lock_servers,
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
    utcnow,
)


@dataclass(frozen=True)
class PurgeCounts:
    messages: int = 0
    documents: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(self.messages + other.messages, self.documents + other.documents)


def opt_out(session: Session, user_id: int, server_id: int | None = None) -> PurgeCounts:
    """Stop collecting a user in one server (or everywhere: None or EVERYWHERE) and remove
    what they gave there."""
    check_snowflake(user_id, "user id")
    if server_id == EVERYWHERE:
        server_id = None
    scope = EVERYWHERE if server_id is None else server_id
    with session.begin_nested():
        # Waits for batches being ingested in that scope (PostgreSQL), so none of them can
        # store this user's messages after the purge below.
        lock_servers(session, server_id, exclusive=True)
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


def export_user(session: Session, user_id: int) -> dict[str, Any]:
    """Everything stored about a user, across servers, as JSON-serialisable data."""
    messages = session.scalars(
        select(Message).where(Message.author_id == user_id).order_by(Message.id)
    ).all()
    documents = session.scalars(
        select(Document).where(Document.uploader_id == user_id).order_by(Document.id)
    ).all()
    opt_outs = session.scalars(
        select(OptOut).where(OptOut.user_id == user_id).order_by(OptOut.server_id)
    ).all()
    return {
        "user_id": user_id,
        "exported_at": utcnow().isoformat(),
        "messages": [
            {
                "id": m.id,
                "server_id": m.server_id,
                "channel_id": m.channel_id,
                "content": m.content,
                "created_at": iso(m.created_at),
                "edited_at": iso(m.edited_at),
            }
            for m in messages
        ],
        "documents": [
            {
                "id": d.id,
                "server_id": d.server_id,
                "filename": d.filename,
                "sha256": d.sha256,
                "size_bytes": d.size_bytes,
                "created_at": iso(d.created_at),
                "text": d.text,
            }
            for d in documents
        ],
        "opt_outs": [
            {
                "server_id": None if o.server_id == EVERYWHERE else o.server_id,
                "everywhere": o.server_id == EVERYWHERE,
                "created_at": iso(o.created_at),
            }
            for o in opt_outs
        ],
    }


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
