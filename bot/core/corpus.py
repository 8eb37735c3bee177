"""The per-server corpus: collected messages, uploaded documents, privacy, training text.

Plain ids and strings only (Discord snowflakes are ints). Every function takes a `Session`
first; callers own the transaction: functions flush but never commit. Functions that write
several rows do it inside a SAVEPOINT, so a failure leaves nothing of that call behind and
the caller's session stays usable.

The training text of a server (`iter_corpus_text`) is, in this order:
  1. its documents, oldest upload first (by id), each followed by "\\n";
  2. its messages in Discord id order (chronological), each followed by "\\n".
A message is one "line" even when it contains newlines itself; the trainer sees exactly
this stream, and `corpus_stats(...).chars` is its length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from bot.core.errors import DuplicateUpload, InvalidInput, NotAllowed
from bot.core.tables import (
    EVERYWHERE,
    Channel,
    Document,
    Message,
    OptOut,
    RunStatus,
    Server,
    TrainedModel,
    TrainingRun,
    utcnow,
)

SEPARATOR = "\n"  # ends every message and document in the training text
MAX_SNOWFLAKE = 2**63 - 1  # ids are stored as signed 64-bit integers
# Rows per statement/page. SQLite allows 32766 bound parameters per statement; a message
# row binds 6. Pages of ~1000 messages (~100 KB of text) keep streaming memory flat.
_INSERT_CHUNK = 1000
_IN_CHUNK = 500
MESSAGE_PAGE_ROWS = 2000
# Documents are paged by count too, and each one is at most `max_upload_bytes` (2 MB by
# default), so a page holds at most a few MB of text.
_DOCUMENT_PAGE = 4


@dataclass(frozen=True)
class IncomingMessage:
    """A message to collect. `created_at` None means now; naive datetimes are UTC."""

    id: int
    channel_id: int
    author_id: int
    content: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class CorpusStats:
    messages: int
    documents: int
    chars: int  # length of the training text (`iter_corpus_text`), separators included
    authors: int  # distinct authors of collected messages
    channels: int  # distinct channels with collected messages


@dataclass(frozen=True)
class PurgeCounts:
    messages: int = 0
    documents: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(self.messages + other.messages, self.documents + other.documents)


# --- servers and channels -------------------------------------------------------------


def ensure_server(session: Session, server_id: int, name: str = "") -> Server:
    """The server's row, created when missing; a non-empty `name` updates the stored one."""
    _check_id(server_id, "server id")
    if server_id == EVERYWHERE:
        raise InvalidInput("server id 0 is reserved")
    _insert_ignore(session, Server, [{"id": server_id, "name": name[:100]}], ["id"])
    server = session.get(Server, server_id, populate_existing=True)
    assert server is not None  # inserted or already there, in this transaction
    if name and server.name != name[:100]:
        server.name = name[:100]
        session.flush()
    return server


def set_collecting(session: Session, server_id: int, enabled: bool) -> None:
    """Turn collection on or off for the whole server (channel opt-ins are kept)."""
    ensure_server(session, server_id).collecting = enabled
    session.flush()


def set_channel_collect(
    session: Session,
    server_id: int,
    channel_id: int,
    enabled: bool,
    added_by: int | None = None,
) -> Channel:
    """Opt a channel in (or out) of collection. Opting out keeps what was collected."""
    _check_id(channel_id, "channel id")
    ensure_server(session, server_id)
    channel = session.get(Channel, (server_id, channel_id))
    if channel is None:
        channel = Channel(server_id=server_id, channel_id=channel_id, added_by=added_by)
        session.add(channel)
    channel.collect = enabled
    if added_by is not None:
        channel.added_by = added_by
    session.flush()
    return channel


def set_channel_replies(
    session: Session, server_id: int, channel_id: int, enabled: bool, chance: float = 0.0
) -> Channel:
    """Let the bot reply in a channel, unprompted, with probability `chance` per message."""
    _check_id(channel_id, "channel id")
    if not 0.0 <= chance <= 1.0:
        raise InvalidInput("the reply chance must be between 0 and 1")
    ensure_server(session, server_id)
    channel = session.get(Channel, (server_id, channel_id))
    if channel is None:
        channel = Channel(server_id=server_id, channel_id=channel_id, collect=False)
        session.add(channel)
    channel.replies = enabled
    channel.reply_chance = chance
    session.flush()
    return channel


def list_channels(
    session: Session, server_id: int, *, collecting_only: bool = False
) -> list[Channel]:
    """The server's configured channels, by channel id."""
    query = select(Channel).where(Channel.server_id == server_id).order_by(Channel.channel_id)
    if collecting_only:
        query = query.where(Channel.collect.is_(True))
    return list(session.scalars(query))


def is_collecting(session: Session, server_id: int, channel_id: int) -> bool:
    """Whether messages posted in this channel are collected now."""
    row = session.execute(
        select(Server.collecting, Channel.collect)
        .join(Channel, Channel.server_id == Server.id)
        .where(Server.id == server_id, Channel.channel_id == channel_id)
    ).first()
    return row is not None and bool(row[0]) and bool(row[1])


# --- messages --------------------------------------------------------------------------


def add_messages(session: Session, server_id: int, messages: Iterable[IncomingMessage]) -> int:
    """Store a batch of messages; returns how many new rows were inserted.

    Idempotent on the message id (a message already stored is left as it is). Skipped:
    empty or whitespace-only messages, and authors who opted out in this server or
    everywhere. NUL characters are removed (PostgreSQL text cannot hold them). The whole
    batch is validated before anything is written, and written in one SAVEPOINT: an
    invalid message or a database error leaves none of the batch behind.
    """
    batch = list(messages)
    rows: dict[int, dict[str, Any]] = {}
    now = utcnow()
    for message in batch:
        _check_message(message)
        content = message.content.replace("\x00", "")
        if not content.strip():
            continue
        rows.setdefault(
            message.id,
            {
                "id": message.id,
                "server_id": server_id,
                "channel_id": message.channel_id,
                "author_id": message.author_id,
                "content": content,
                "created_at": _utc(message.created_at) or now,
            },
        )
    if not rows:
        return 0
    with session.begin_nested():
        ensure_server(session, server_id)
        opted_out = _opted_out_among(
            session, server_id, {row["author_id"] for row in rows.values()}
        )
        kept = [row for row in rows.values() if row["author_id"] not in opted_out]
        return _insert_ignore(session, Message, kept, ["id"])


def edit_message(
    session: Session, message_id: int, content: str, edited_at: datetime | None = None
) -> bool:
    """Replace a stored message's text; an edit that leaves it empty removes it.

    Returns whether the message was stored (edits of messages never collected are ignored).
    """
    content = content.replace("\x00", "")
    if not content.strip():
        return delete_messages(session, [message_id]) > 0
    result = session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(content=content, edited_at=_utc(edited_at) or utcnow())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return _rowcount(result) > 0


def delete_messages(session: Session, message_ids: Iterable[int]) -> int:
    """Remove messages (deleted on Discord); returns how many were stored."""
    ids = sorted(set(message_ids))
    deleted = 0
    with session.begin_nested():
        for chunk in _chunks(ids, _IN_CHUNK):
            result = session.execute(
                delete(Message)
                .where(Message.id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            deleted += _rowcount(result)
    return deleted


def delete_message(session: Session, message_id: int) -> bool:
    return delete_messages(session, [message_id]) == 1


def delete_channel_messages(session: Session, server_id: int, channel_id: int) -> int:
    """Remove everything collected from one channel (e.g. the channel was deleted)."""
    result = session.execute(
        delete(Message)
        .where(Message.server_id == server_id, Message.channel_id == channel_id)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return _rowcount(result)


# --- documents -------------------------------------------------------------------------


def add_document(
    session: Session,
    server_id: int,
    uploader_id: int,
    filename: str,
    data: bytes,
    max_bytes: int,
) -> Document:
    """Store an uploaded text file.

    The bytes must be UTF-8 text (a byte-order mark is dropped, CRLF/CR line ends become
    LF) without NUL bytes; anything else is refused with a message saying why, and so is
    a file over `max_bytes` or one with no text. Duplicates are detected by the sha256 of
    the normalised text, per server, and raise `DuplicateUpload`.
    """
    _check_id(uploader_id, "uploader id")
    name = _clean_filename(filename)
    if len(data) > max_bytes:
        raise InvalidInput(
            f"{name} is {len(data):,} bytes; uploads are limited to {max_bytes:,} bytes."
        )
    text = decode_upload(name, data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with session.begin_nested():
        ensure_server(session, server_id)
        if is_opted_out(session, uploader_id, server_id):
            raise NotAllowed(
                "You opted out of collection here, so Parrot does not store your uploads. "
                "Opt back in first."
            )
        existing = session.scalars(
            select(Document).where(Document.server_id == server_id, Document.sha256 == digest)
        ).first()
        if existing is not None:
            raise _duplicate(name, existing)
        document = Document(
            server_id=server_id,
            uploader_id=uploader_id,
            filename=name,
            sha256=digest,
            size_bytes=len(data),
            text=text,
        )
        session.add(document)
        try:
            session.flush()
        except IntegrityError:
            # Another session stored the same text between our check and our insert.
            raise DuplicateUpload(f"{name} was already uploaded to this server.") from None
    return document


def decode_upload(filename: str, data: bytes) -> str:
    """The text of an upload, or `InvalidInput` saying why it is not usable text."""
    if b"\x00" in data:
        raise InvalidInput(
            f"{filename} contains NUL bytes: it looks like a binary file, not plain text."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{filename} is not valid UTF-8 (bad byte at offset {error.start}); "
            "save it as UTF-8 text and upload it again."
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InvalidInput(f"{filename} has no text in it.")
    return text


def delete_document(session: Session, server_id: int, document_id: int) -> bool:
    result = session.execute(
        delete(Document)
        .where(Document.server_id == server_id, Document.id == document_id)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return _rowcount(result) > 0


def list_documents(session: Session, server_id: int) -> list[Document]:
    """The server's documents, oldest first (their text is loaded lazily, on access)."""
    return list(
        session.scalars(
            select(Document)
            .where(Document.server_id == server_id)
            .order_by(Document.id)
            .options(defer(Document.text))
        )
    )


# --- privacy ---------------------------------------------------------------------------


def opt_out(session: Session, user_id: int, server_id: int | None = None) -> PurgeCounts:
    """Stop collecting a user in one server (or everywhere) and remove what they gave."""
    _check_id(user_id, "user id")
    scope = EVERYWHERE if server_id is None else server_id
    with session.begin_nested():
        _insert_ignore(session, OptOut, [{"user_id": user_id, "server_id": scope}], None)
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
    return _rowcount(result) > 0


def is_opted_out(session: Session, user_id: int, server_id: int | None = None) -> bool:
    """Whether the user opted out in this server or everywhere (None: everywhere only)."""
    scopes = [EVERYWHERE] if server_id is None else [EVERYWHERE, server_id]
    found = session.scalar(
        select(OptOut.user_id).where(OptOut.user_id == user_id, OptOut.server_id.in_(scopes))
    )
    return found is not None


def purge_user(session: Session, user_id: int, server_id: int | None = None) -> PurgeCounts:
    """Delete a user's messages and uploads in one server (None: everywhere).

    Their id is also cleared from channel and training-run records. Opt-outs are kept:
    they are the user's standing request not to be collected.
    """
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
    return PurgeCounts(messages=_rowcount(messages), documents=_rowcount(documents))


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
            counts[table.__tablename__] = _rowcount(result)
        result = session.execute(
            delete(Server)
            .where(Server.id == server_id)
            .execution_options(synchronize_session=False)
        )
        counts[Server.__tablename__] = _rowcount(result)
    session.expire_all()
    return counts


def export_user(session: Session, user_id: int) -> dict[str, Any]:
    """Everything stored about a user, across servers, as JSON-serialisable data."""
    messages = session.scalars(
        select(Message).where(Message.author_id == user_id).order_by(Message.id)
    )
    documents = session.scalars(
        select(Document).where(Document.uploader_id == user_id).order_by(Document.id)
    )
    opt_outs = session.scalars(
        select(OptOut).where(OptOut.user_id == user_id).order_by(OptOut.server_id)
    )
    return {
        "user_id": user_id,
        "exported_at": utcnow().isoformat(),
        "messages": [
            {
                "id": m.id,
                "server_id": m.server_id,
                "channel_id": m.channel_id,
                "content": m.content,
                "created_at": _iso(m.created_at),
                "edited_at": _iso(m.edited_at),
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
                "created_at": _iso(d.created_at),
                "text": d.text,
            }
            for d in documents
        ],
        "opt_outs": [
            {
                "server_id": None if o.server_id == EVERYWHERE else o.server_id,
                "everywhere": o.server_id == EVERYWHERE,
                "created_at": _iso(o.created_at),
            }
            for o in opt_outs
        ],
    }


# --- training text and statistics ------------------------------------------------------


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
    since = _utc(since)
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


# --- helpers ---------------------------------------------------------------------------


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
        last_id = first_document_id - 1
        while True:
            page = session.execute(
                select(Document.id, Document.text)
                .where(Document.server_id == server_id, Document.id > last_id)
                .order_by(Document.id)
                .limit(_DOCUMENT_PAGE)
            ).all()
            for document_id, text in page:
                last_id = document_id
                yield text + SEPARATOR
            if len(page) < _DOCUMENT_PAGE:
                break
    last_id = first_message_id - 1
    while True:
        page = session.execute(
            select(Message.id, Message.content)
            .where(Message.server_id == server_id, Message.id > last_id)
            .order_by(Message.id)
            .limit(page_rows)
        ).all()
        if not page:
            return
        last_id = page[-1][0]
        yield "".join(content + SEPARATOR for _, content in page)
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
    found = _walk_back(session, newest_first_messages, Message.id, budget, page_rows)
    if found is not None:
        message_id, skip = found
        return -1, message_id, skip
    budget -= _total_length(session, server_id)
    if budget <= 0:
        return -1, 0, 0  # the messages fill it exactly
    newest_first_documents = (
        select(Document.id, func.length(Document.text) + len(SEPARATOR))
        .where(Document.server_id == server_id)
        .order_by(Document.id.desc())
    )
    found = _walk_back(session, newest_first_documents, Document.id, budget, page_rows)
    if found is not None:
        document_id, skip = found
        return document_id, 0, skip
    return 0, 0, 0  # everything fits


def _walk_back(
    session: Session, query: Select[int, Any], id_column: Any, budget: int, page_rows: int
) -> tuple[int, int] | None:
    """Page through (id, length) newest first until the lengths exceed `budget`; returns
    the id of the item that crosses it and how many of its characters to drop, or None
    when every item fits."""
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
            return None
        last_id = int(page[-1][0])


def _total_length(session: Session, server_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(func.length(Message.content) + len(SEPARATOR)), 0)).where(
            Message.server_id == server_id
        )
    )
    return int(total or 0)


def _opted_out_among(session: Session, server_id: int, user_ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(sorted(user_ids), _IN_CHUNK):
        found.update(
            session.scalars(
                select(OptOut.user_id).where(
                    OptOut.server_id.in_([server_id, EVERYWHERE]), OptOut.user_id.in_(chunk)
                )
            )
        )
    return found


def _insert_ignore(
    session: Session,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    index_elements: list[str] | None,
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING in chunks; returns how many rows were new."""
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
    for chunk in _chunks(list(rows), _INSERT_CHUNK):
        inserted += len(session.execute(statement, chunk).all())
    return inserted


def _check_message(message: IncomingMessage) -> None:
    _check_id(message.id, "message id")
    _check_id(message.channel_id, "channel id")
    _check_id(message.author_id, "author id")
    if not isinstance(message.content, str):
        raise InvalidInput(f"message {message.id}: content must be text")
    if message.created_at is not None and not isinstance(message.created_at, datetime):
        raise InvalidInput(f"message {message.id}: created_at must be a datetime")


def _check_id(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SNOWFLAKE:
        raise InvalidInput(f"{what} must be an integer between 0 and 2^63-1, got {value!r}")


def _clean_filename(filename: str) -> str:
    # Keep only the last path component, whichever separator the uploader's system used.
    name = PureWindowsPath(PurePosixPath(filename).name).name.replace("\x00", "").strip()
    return (name or "upload.txt")[:255]


def _duplicate(name: str, existing: Document) -> DuplicateUpload:
    when = _utc(existing.created_at)
    date = f" on {when:%Y-%m-%d}" if when else ""
    return DuplicateUpload(
        f"{name} has the same text as {existing.filename}, already uploaded{date}."
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    value = _utc(value)
    return None if value is None else value.isoformat()


def _rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
