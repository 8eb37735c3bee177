"""Removing text from a server's corpus: Discord deletes and edits, channel purges,
document removal and `/corpus clear`.

Every removal also counts the characters it took out (`servers.deleted_chars_since_root`,
`servers.first_deletion_at`): a fine-tuned model may still hold them in its weights, so past
`privacy.rebuild_after_deleted_fraction` (or `rebuild_after_days`) a rebuild from the root
is queued (`bot.core.training.rebuilds`). Until then the lineage guard keeps the text from
verbatim output. Like the rest of the store, functions take the caller's `Session` and
never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from bot.core.storage.corpus import clean_text
from bot.core.storage.privacy import PurgeCounts
from bot.core.storage.sql import IN_CLAUSE_CHUNK, as_utc, chunks, rowcount
from bot.core.storage.tables import Document, Message, Server, utcnow

# --- messages --------------------------------------------------------------------------


def edit_message(
    session: Session, message_id: int, content: str, edited_at: datetime | None = None
) -> bool:
    """Replace a stored message's text; an edit that leaves it empty removes it.

    Returns whether the message was stored (edits of messages never collected are ignored).
    """
    content = clean_text(content)
    if not content.strip():
        return delete_messages(session, [message_id]) > 0
    # The old text leaves the corpus, but a model may hold it: it counts as deleted.
    _note_deleted_chars(session, _chars_by_server(session, Message.id == message_id))
    result = session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(content=content, edited_at=as_utc(edited_at) or utcnow())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return rowcount(result) > 0


def delete_messages(session: Session, message_ids: Iterable[int]) -> int:
    """Remove messages (deleted on Discord); returns how many were stored."""
    ids = sorted(set(message_ids))
    deleted = 0
    with session.begin_nested():
        for chunk in chunks(ids, IN_CLAUSE_CHUNK):
            _note_deleted_chars(session, _chars_by_server(session, Message.id.in_(chunk)))
            result = session.execute(
                delete(Message)
                .where(Message.id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            deleted += rowcount(result)
    return deleted


def delete_message(session: Session, message_id: int) -> bool:
    return delete_messages(session, [message_id]) == 1


def delete_channel_messages(session: Session, server_id: int, channel_id: int) -> int:
    """Remove everything collected from one channel (e.g. the channel was deleted)."""
    where = (Message.server_id == server_id) & (Message.channel_id == channel_id)
    _note_deleted_chars(session, _chars_by_server(session, where))
    result = session.execute(
        delete(Message)
        .where(Message.server_id == server_id, Message.channel_id == channel_id)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return rowcount(result)


def _chars_by_server(session: Session, where: ColumnElement[bool]) -> dict[int, int]:
    """Characters of the matching messages, per server (read before they are deleted)."""
    rows = session.execute(
        select(Message.server_id, func.sum(func.length(Message.content)))
        .where(where)
        .group_by(Message.server_id)
    )
    return {int(server): int(chars or 0) for server, chars in rows}


def _note_deleted_chars(session: Session, chars_by_server: dict[int, int]) -> None:
    """Count text deleted from servers' corpora since their model's root: a fine-tuned model
    may still hold it, so past `privacy.rebuild_after_deleted_fraction` (or days) a rebuild
    from the root is queued (`training.rebuilds.request_rebuilds_after_deletions`)."""
    now = utcnow()
    for server_id, chars in chars_by_server.items():
        if chars <= 0:
            continue
        session.execute(
            update(Server)
            .where(Server.id == server_id)
            .values(
                deleted_chars_since_root=Server.deleted_chars_since_root + chars,
                first_deletion_at=func.coalesce(Server.first_deletion_at, now),
            )
            .execution_options(synchronize_session=False)
        )


def delete_document(session: Session, server_id: int, document_id: int) -> bool:
    chars = session.scalar(
        select(func.length(Document.text)).where(
            Document.server_id == server_id, Document.id == document_id
        )
    )
    _note_deleted_chars(session, {server_id: int(chars or 0)})
    result = session.execute(
        delete(Document)
        .where(Document.server_id == server_id, Document.id == document_id)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return rowcount(result) > 0


# --- the whole corpus ------------------------------------------------------------------


def clear_corpus(session: Session, server_id: int) -> PurgeCounts:
    """Delete every collected message and uploaded document of a server, in one SAVEPOINT.

    Everything else stays: the server's settings, channels, opt-outs, runs and models.
    """
    with session.begin_nested():
        messages = session.execute(
            delete(Message)
            .where(Message.server_id == server_id)
            .execution_options(synchronize_session=False)
        )
        documents = session.execute(
            delete(Document)
            .where(Document.server_id == server_id)
            .execution_options(synchronize_session=False)
        )
    session.expire_all()  # ORM objects loaded earlier may show deleted rows
    return PurgeCounts(messages=rowcount(messages), documents=rowcount(documents))
