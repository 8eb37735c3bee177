"""The training text of a server, streamed from the database, and its size.

The text is, in this order:
  1. the server's documents, oldest upload first (by id), each followed by SEPARATOR;
  2. its messages in Discord id order (chronological), each followed by SEPARATOR.
A message is one "line" even when it contains newlines itself. The trainer sees exactly
this stream, and `corpus_stats(...).chars` is its length.

Rows are read in pages by keyset (`id > last ORDER BY id LIMIT n`, on the (server_id, id)
index), never with OFFSET and never all at once, so streaming a 100 MB corpus takes a few
MB of memory however large it grows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.core.kinds import RunStatus
from bot.core.storage.sql import as_utc
from bot.core.storage.tables import Document, Message, TrainingRun, utcnow

SEPARATOR = "\n"  # ends every message and document in the training text
# Messages per query and per yielded chunk (~2000 x ~100 chars: a few hundred KB).
MESSAGE_PAGE_ROWS = 2000
# Documents are yielded one by one and read a few per query: each is at most the upload
# cap (2 MB by default), so a page holds a few MB at most.
DOCUMENT_PAGE_ROWS = 4


@dataclass(frozen=True)
class CorpusStats:
    messages: int
    documents: int
    chars: int  # length of the training text (`iter_corpus_text`), separators included
    authors: int  # distinct authors of collected messages
    channels: int  # distinct channels with collected messages


@dataclass(frozen=True)
class CorpusSnapshot:
    """Whose text a training run read and up to where: the lineage record of its model.

    Taken in the same read transaction as the text, so it describes exactly those rows
    (a superset when `max_chars` cut the oldest text: every author of the server counts).
    """

    author_ids: tuple[int, ...]  # message authors and document uploaders
    through_message_id: int | None
    through_document_id: int | None
    taken_at: datetime


def corpus_snapshot(session: Session, server_id: int) -> CorpusSnapshot:
    authors = session.scalars(
        select(Message.author_id)
        .where(Message.server_id == server_id)
        .union(select(Document.uploader_id).where(Document.server_id == server_id))
    ).all()
    through_message = session.scalar(
        select(func.max(Message.id)).where(Message.server_id == server_id)
    )
    through_document = session.scalar(
        select(func.max(Document.id)).where(Document.server_id == server_id)
    )
    return CorpusSnapshot(
        author_ids=tuple(sorted({int(a) for a in authors})),
        through_message_id=None if through_message is None else int(through_message),
        through_document_id=None if through_document is None else int(through_document),
        taken_at=utcnow(),
    )


def iter_corpus_text(
    session: Session,
    server_id: int,
    *,
    max_chars: int | None = None,
    page_rows: int = MESSAGE_PAGE_ROWS,
) -> Iterator[str]:
    """Stream the server's training text (see the module docstring) in chunks.

    Pages are read by keyset (`id > last_id ORDER BY id LIMIT n`), so memory stays flat
    however large the corpus is, and concatenating the chunks always gives the same text
    for the same rows.

    With `max_chars`, the stream is the last `max_chars` characters of the full text:
    the newest messages win, documents come in only if the messages leave room, and the
    oldest item kept is cut from its start. Lengths are summed in SQL from the newest item
    backwards, so the text that is left out is never read.

    `page_rows` messages are read per query and yielded as one chunk; each document is a
    chunk of its own.

    The session's transaction stays open while the generator is alive. On SQLite, read
    through an engine made with `make_engine(url, begin_immediate=False)`, or a long stream
    holds the write lock and makes the bot's writers wait.
    """
    if page_rows < 1:
        raise ValueError("page_rows must be at least 1")
    if max_chars is not None and max_chars <= 0:
        return
    first_document_id, first_message_id, skip = 0, 0, 0
    if max_chars is not None:
        first_document_id, first_message_id, skip = _tail_start(
            session, server_id, max_chars, page_rows
        )
    remaining = max_chars
    for chunk in _iter_items(session, server_id, first_document_id, first_message_id, page_rows):
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        if remaining is not None:
            # Rows written while streaming could make the text longer than planned.
            chunk = chunk[:remaining]
            remaining -= len(chunk)
        if chunk:
            yield chunk
        if remaining == 0:
            return


def corpus_text(session: Session, server_id: int, *, max_chars: int | None = None) -> str:
    """The whole training text as one string (for small corpora and tests)."""
    return "".join(iter_corpus_text(session, server_id, max_chars=max_chars))


def corpus_stats(session: Session, server_id: int) -> CorpusStats:
    message_row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(func.length(Message.content)), 0),
            func.count(func.distinct(Message.author_id)),
            func.count(func.distinct(Message.channel_id)),
        ).where(Message.server_id == server_id)
    ).one()
    document_row = session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(Document.text)), 0)).where(
            Document.server_id == server_id
        )
    ).one()
    messages, message_chars, authors, channels = (int(value) for value in message_row)
    documents, document_chars = (int(value) for value in document_row)
    separators = (messages + documents) * len(SEPARATOR)
    return CorpusStats(
        messages=messages,
        documents=documents,
        chars=message_chars + document_chars + separators,
        authors=authors,
        channels=channels,
    )


def last_success_started_at(session: Session, server_id: int) -> datetime | None:
    """When the server's most recent successful training run started (None: never)."""
    return session.scalar(
        select(func.max(TrainingRun.started_at)).where(
            TrainingRun.server_id == server_id, TrainingRun.status == RunStatus.SUCCEEDED
        )
    )


def chars_since_last_success(session: Session, server_id: int) -> int:
    """Training-text characters from messages and documents created after the start of the
    server's last successful run; the whole corpus when it never had one.

    The start (not the end) is the cut-off because a run trains on what existed when it
    started. Counted like `corpus_stats(...).chars` (a separator per item).
    """
    since = last_success_started_at(session, server_id)
    if since is None:
        return corpus_stats(session, server_id).chars
    since = as_utc(since)
    message_chars = session.scalar(
        select(func.coalesce(func.sum(func.length(Message.content) + len(SEPARATOR)), 0)).where(
            Message.server_id == server_id, Message.created_at > since
        )
    )
    document_chars = session.scalar(
        select(func.coalesce(func.sum(func.length(Document.text) + len(SEPARATOR)), 0)).where(
            Document.server_id == server_id, Document.created_at > since
        )
    )
    return int(message_chars or 0) + int(document_chars or 0)


def _iter_items(
    session: Session,
    server_id: int,
    first_document_id: int,
    first_message_id: int,
    page_rows: int,
) -> Iterator[str]:
    """Documents from `first_document_id`, then messages from `first_message_id` (ids
    inclusive), each item followed by the separator; documents one chunk each, messages a
    page per chunk. A `first_document_id` of -1 means no documents."""
    if first_document_id >= 0:
        for page in _keyset_pages(
            session, Document, Document.text, server_id, first_document_id, DOCUMENT_PAGE_ROWS
        ):
            for _, text in page:
                yield text + SEPARATOR
    for page in _keyset_pages(
        session, Message, Message.content, server_id, first_message_id, page_rows
    ):
        yield "".join(content + SEPARATOR for _, content in page)


def _keyset_pages(
    session: Session,
    table: type[Document] | type[Message],
    text_column: InstrumentedAttribute[str],
    server_id: int,
    first_id: int,
    page_rows: int,
) -> Iterator[Sequence[Any]]:  # rows of (id, text); Row's typing differs by SQLAlchemy version
    """(id, text) rows of one server in id order from `first_id`, a page at a time, read by
    keyset (`id > last id seen`) so every page is an index range scan, never an OFFSET."""
    last_id = first_id - 1
    while True:
        page = session.execute(
            select(table.id, text_column)
            .where(table.server_id == server_id, table.id > last_id)
            .order_by(table.id)
            .limit(page_rows)
        ).all()
        if page:
            yield page
        if len(page) < page_rows:
            return
        last_id = page[-1][0]
        if len(page) < page_rows:
            return


def _tail_start(
    session: Session, server_id: int, max_chars: int, page_rows: int
) -> tuple[int, int, int]:
    """Where the last `max_chars` characters of the training text begin.

    Returns (first document id or -1 for none, first message id, characters to drop from
    the start of that first item). Walks item lengths from the newest backwards.
    """
    budget = max_chars
    newest_first_messages = (
        select(Message.id, func.length(Message.content) + len(SEPARATOR))
        .where(Message.server_id == server_id)
        .order_by(Message.id.desc())
    )
    message_id, rest = _walk_back(session, newest_first_messages, Message.id, budget, page_rows)
    if message_id is not None:
        return -1, message_id, rest
    # Every message fits; `rest` (> 0) is the room left for the newest documents.
    newest_first_documents = (
        select(Document.id, func.length(Document.text) + len(SEPARATOR))
        .where(Document.server_id == server_id)
        .order_by(Document.id.desc())
    )
    document_id, rest = _walk_back(session, newest_first_documents, Document.id, rest, page_rows)
    if document_id is not None:
        return document_id, 0, rest
    return 0, 0, 0  # everything fits


def _walk_back(
    session: Session, query: Select[int, Any], id_column: Any, budget: int, page_rows: int
) -> tuple[int | None, int]:
    """Page through (id, length) newest first until the lengths reach `budget`.

    Returns the id of the item that reaches it and how many of its characters to drop;
    when every item fits, (None, the budget left over), so no second pass sums them again.
    """
    last_id: int | None = None
    while True:
        page_query = query if last_id is None else query.where(id_column < last_id)
        page = session.execute(page_query.limit(page_rows)).all()
        for row in page:
            item_id, length = int(row[0]), int(row[1])
            if length >= budget:
                return item_id, length - budget
            budget -= length
        if len(page) < page_rows:
            return None, budget
        last_id = int(page[-1][0])
