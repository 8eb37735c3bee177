"""The per-server corpus store: servers, channels, collected messages, uploaded documents.

Privacy requests live in `bot.core.storage.privacy`, removals (deletes, edits, purges,
`/corpus clear`) in `bot.core.storage.deletions`, and reading the corpus back as training
text (and its statistics) in `bot.core.storage.corpus_text`.

Plain ids and strings only (Discord snowflakes are ints). Every function takes a `Session`
first; callers own the transaction: functions flush but never commit. Functions that write
several rows do it inside a SAVEPOINT, so a failure leaves nothing of that call behind and
the caller's session stays usable.

Bad input: empty or whitespace-only messages are skipped; NUL characters are removed from
messages and lone surrogates replaced (`clean_text`); uploads must be UTF-8 text without NUL bytes
and within the size cap, else `InvalidInput` says why; a second upload of the same text to
a server raises `DuplicateUpload`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from bot.core.errors import DuplicateUpload, InvalidInput, NotAllowed
from bot.core.storage.privacy import is_opted_out, opted_out_among
from bot.core.storage.sql import (
    as_utc,
    check_snowflake,
    insert_ignore,
    lock_collection,
)
from bot.core.storage.tables import EVERYWHERE, Channel, Document, Message, Server, utcnow

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class IncomingMessage:
    """A message to collect. `created_at` None means now; naive datetimes are UTC."""

    id: int
    channel_id: int
    author_id: int
    content: str
    created_at: datetime | None = None


# --- servers and channels -------------------------------------------------------------


def ensure_server(session: Session, server_id: int, name: str = "") -> Server:
    """The server's row, created when missing; a non-empty `name` updates the stored one."""
    check_snowflake(server_id, "server id")
    if server_id == EVERYWHERE:
        raise InvalidInput("server id 0 is reserved")
    insert_ignore(session, Server, [{"id": server_id, "name": name[:100]}], ["id"])
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


def generate_cooldown_override(session: Session, server_id: int) -> float | None:
    """The server's per-user /generate cooldown in seconds; None: the config's applies."""
    return session.scalar(select(Server.generate_cooldown_seconds).where(Server.id == server_id))


def set_generate_cooldown(session: Session, server_id: int, seconds: float | None) -> None:
    """Override the per-user /generate cooldown for one server (None: back to the config's)."""
    if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
        raise InvalidInput("the cooldown must be a number of seconds, 0 or more")
    ensure_server(session, server_id).generate_cooldown_seconds = seconds
    session.flush()


def set_channel_collect(
    session: Session,
    server_id: int,
    channel_id: int,
    enabled: bool,
    added_by: int | None = None,
) -> Channel:
    """Opt a channel in (or out) of collection. Opting out keeps what was collected."""
    channel = _channel_row(session, server_id, channel_id)
    channel.collect = enabled
    if added_by is not None:
        channel.added_by = added_by
    session.flush()
    return channel


def set_channel_replies(
    session: Session, server_id: int, channel_id: int, enabled: bool, chance: float = 0.0
) -> Channel:
    """Let the bot reply in a channel, unprompted, with probability `chance` per message."""
    check_snowflake(channel_id, "channel id")
    if not 0.0 <= chance <= 1.0:
        raise InvalidInput("the reply chance must be between 0 and 1")
    channel = _channel_row(session, server_id, channel_id)
    channel.replies = enabled
    channel.reply_chance = chance
    session.flush()
    return channel


def _channel_row(session: Session, server_id: int, channel_id: int) -> Channel:
    """The channel's settings row, created (collecting nothing, no replies) when missing."""
    check_snowflake(channel_id, "channel id")
    ensure_server(session, server_id)
    channel = session.get(Channel, (server_id, channel_id))
    if channel is None:
        channel = Channel(server_id=server_id, channel_id=channel_id, collect=False)
        session.add(channel)
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
    everywhere. Text is cleaned with `clean_text` (no NUL, no lone surrogates). The batch
    is validated first, then written in one SAVEPOINT: nothing of it stays on failure."""
    batch = list(messages)
    rows: dict[int, dict[str, Any]] = {}
    now = utcnow()
    for message in batch:
        _check_message(message)
        content = clean_text(message.content)
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
                "created_at": as_utc(message.created_at) or now,
            },
        )
    if not rows:
        return 0
    with session.begin_nested():
        lock_collection(session, server_id, exclusive=False)  # first: see its docstring
        ensure_server(session, server_id)
        opted_out = opted_out_among(session, server_id, (row["author_id"] for row in rows.values()))
        kept = [row for row in rows.values() if row["author_id"] not in opted_out]
        return insert_ignore(session, Message, kept, ["id"])


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
    check_snowflake(uploader_id, "uploader id")
    name = _clean_filename(filename)
    if len(data) > max_bytes:
        raise InvalidInput(
            f"{name} is {len(data):,} bytes; uploads are limited to {max_bytes:,} bytes."
        )
    text = decode_upload(name, data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with session.begin_nested():
        lock_collection(session, server_id, exclusive=False)  # first: see its docstring
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


def clean_text(text: str) -> str:
    """Message text as the databases can store it: NUL characters removed (PostgreSQL text
    cannot hold them) and lone surrogates, which are not encodable as UTF-8 (a malformed
    escape in a gateway payload), replaced with U+FFFD."""
    text = text.replace("\x00", "")
    if not text.isascii():
        text = _SURROGATE.sub("\N{REPLACEMENT CHARACTER}", text)
    return text


# --- helpers ---------------------------------------------------------------------------


def _check_message(message: IncomingMessage) -> None:
    check_snowflake(message.id, "message id")
    check_snowflake(message.channel_id, "channel id")
    check_snowflake(message.author_id, "author id")
    if not isinstance(message.content, str):
        raise InvalidInput(f"message {message.id}: content must be text")
    if message.created_at is not None and not isinstance(message.created_at, datetime):
        raise InvalidInput(f"message {message.id}: created_at must be a datetime")


def _clean_filename(filename: str) -> str:
    # Keep only the last path component, whichever separator the uploader's system used.
    name = PureWindowsPath(PurePosixPath(filename).name).name.replace("\x00", "").strip()
    return (name or "upload.txt")[:255]


def _duplicate(name: str, existing: Document) -> DuplicateUpload:
    when = as_utc(existing.created_at)
    date = f" on {when:%Y-%m-%d}" if when else ""
    return DuplicateUpload(
        f"{name} has the same text as {existing.filename}, already uploaded{date}."
    )
