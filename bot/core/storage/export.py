"""A user's data export (`/privacy export`): everything stored about them, streamed from
the database into gzip-compressed JSON files that each fit an upload limit.

Every file ("part") is a complete gzip-compressed JSON document on its own:

    {"format": "parrot-export", "version": 2, "user_id": 1, "exported_at": "...",
     "part": 1, "opt_outs": [...], "messages": [...], "documents": [...], "parts": 3}

The parts' "messages" lists, in part order, are all the user's messages in id order, and
likewise "documents"; the opt-outs are in part 1 ("opt_outs" is [] in the others). An entry
too large for one file (a huge upload) is cut into pieces that keep its id and other
fields and add "piece" (1-based) and "pieces": join their "text" (or "content") in order.
`load_export` puts the parts back together.

How it is written: rows are read by keyset pages (`id > last ORDER BY id LIMIT n`), each
page in its own short transaction, so memory stays flat however much a user wrote, and on
SQLite (`BEGIN IMMEDIATE`) the export holds the write lock for one page at a time, never
for the whole export. The price: it is not one snapshot (a message stored or deleted
meanwhile may or may not be in it; none is listed twice). Each file is two gzip members,
which RFC 1952 allows and every gunzip reads as one stream: the body, compressed as the
rows come, and `, "parts": n}` appended once the number of files is known.

Sizes: deflate output lags its input, so a file's final size is bounded by the bytes
already written plus zlib's compressBound of the input since the last flush. When that
bound would pass the limit, a sync flush gives the real size; only if the next entry still
does not fit does the file end and the next begin.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage.sql import iso
from bot.core.storage.tables import EVERYWHERE, Document, Message, OptOut, utcnow

DEFAULT_PART_LIMIT = 10 * 1024 * 1024  # Discord's default upload limit
MIN_PART_LIMIT = 64 * 1024  # room for the biggest Discord message, escaped, with headroom
# Messages per query (~1 MB). Large because each page, without an (author_id, id) index,
# sorts the user's remaining messages: fewer pages, less sorting.
MESSAGE_PAGE_ROWS = 5000
DOCUMENT_PAGE_ROWS = 4  # each is at most the upload cap (2 MB by default)
FORMAT_VERSION = 2  # 1: the single uncompressed JSON object of earlier versions
# Bytes that may still come after the last entry: the gzip trailer and deflate's final
# block, the body's closing `], "documents": []`, and the whole second member.
_RESERVE = 18 + 64 + 128
_MAX_BYTES_PER_CHAR = 6  # a control character in JSON: \u001f
_GZIP_LEVEL = 6
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib writes the gzip header and trailer itself


@dataclass(frozen=True)
class ExportFiles:
    """The parts of an export, in order, in a directory of their own (`delete` removes it)."""

    directory: Path
    paths: list[Path]
    sizes: list[int]
    messages: int
    documents: int

    def delete(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def write_user_export(
    sessions: sessionmaker[Session],
    user_id: int,
    *,
    part_limit: int | None = DEFAULT_PART_LIMIT,
    directory: Path | None = None,
    message_page_rows: int = MESSAGE_PAGE_ROWS,
) -> ExportFiles:
    """Write the user's export as parts of at most `part_limit` bytes (None: one file).

    Blocking (database and file I/O): run it in a worker thread. The files go to a new
    temporary directory unless `directory` is given; on failure nothing is left behind.
    """
    if part_limit is not None and part_limit < MIN_PART_LIMIT:
        raise ValueError(f"part_limit must be at least {MIN_PART_LIMIT} bytes")
    target = Path(directory or tempfile.mkdtemp(prefix="parrot-export-"))
    target.mkdir(parents=True, exist_ok=True)
    writer: _PartWriter | None = None
    try:
        with sessions() as session:
            opt_outs = _opt_out_entries(session, user_id)
        writer = _PartWriter(target, user_id, opt_outs, part_limit)
        messages = documents = 0
        for entry in _keyset_entries(sessions, user_id, _message_page, message_page_rows):
            writer.add("messages", entry, "content")
            messages += 1
        for entry in _keyset_entries(sessions, user_id, _document_page, DOCUMENT_PAGE_ROWS):
            writer.add("documents", entry, "text")
            documents += 1
        paths, sizes = writer.finish()
    except BaseException:
        if writer is not None:
            writer.abandon()
        if directory is None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return ExportFiles(target, paths, sizes, messages, documents)


def load_export(parts: Sequence[bytes]) -> dict[str, Any]:
    """The whole export from its parts' gzip bytes (any order), pieces joined again."""
    documents = sorted((json.loads(gzip.decompress(data)) for data in parts), key=_part_number)
    numbers = [(d["part"], d["parts"]) for d in documents]
    if not documents or numbers != [(i, len(documents)) for i in range(1, len(documents) + 1)]:
        raise ValueError("the export is incomplete: some parts are missing")
    first = documents[0]
    return {
        "format": first["format"],
        "version": first["version"],
        "user_id": first["user_id"],
        "exported_at": first["exported_at"],
        "opt_outs": first["opt_outs"],
        "messages": _join_pieces([m for d in documents for m in d["messages"]], "content"),
        "documents": _join_pieces([e for d in documents for e in d["documents"]], "text"),
    }


# --- reading ----------------------------------------------------------------------------

_Page = Callable[[Session, int, int, int], list[dict[str, Any]]]


def _keyset_entries(
    sessions: sessionmaker[Session], user_id: int, read_page: _Page, page_rows: int
) -> Iterator[dict[str, Any]]:
    last_id = -1
    while True:
        with sessions() as session:  # one short transaction per page: see the docstring
            page = read_page(session, user_id, last_id, page_rows)
        yield from page
        if len(page) < page_rows:
            return
        last_id = page[-1]["id"]


def _message_page(session: Session, user_id: int, after: int, rows: int) -> list[dict[str, Any]]:
    query = (
        select(
            Message.id,
            Message.server_id,
            Message.channel_id,
            Message.content,
            Message.created_at,
            Message.edited_at,
        )
        .where(Message.author_id == user_id, Message.id > after)
        .order_by(Message.id)
        .limit(rows)
    )
    return [
        {
            "id": row.id,
            "server_id": row.server_id,
            "channel_id": row.channel_id,
            "content": row.content,
            "created_at": iso(row.created_at),
            "edited_at": iso(row.edited_at),
        }
        for row in session.execute(query)
    ]


def _document_page(session: Session, user_id: int, after: int, rows: int) -> list[dict[str, Any]]:
    query = (
        select(Document)
        .where(Document.uploader_id == user_id, Document.id > after)
        .order_by(Document.id)
        .limit(rows)
    )
    return [
        {
            "id": d.id,
            "server_id": d.server_id,
            "filename": d.filename,
            "sha256": d.sha256,
            "size_bytes": d.size_bytes,
            "created_at": iso(d.created_at),
            "text": d.text,
        }
        for d in session.scalars(query)
    ]


def _opt_out_entries(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(OptOut).where(OptOut.user_id == user_id).order_by(OptOut.server_id)
    )
    return [
        {
            "server_id": None if o.server_id == EVERYWHERE else o.server_id,
            "everywhere": o.server_id == EVERYWHERE,
            "created_at": iso(o.created_at),
        }
        for o in rows
    ]


# --- writing ----------------------------------------------------------------------------


def _encode(value: object) -> bytes:
    # Stored text is already valid Unicode (`corpus.clean_text`); "replace" only guards
    # against a stray surrogate in an old row, so the export never fails on one.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")


def _compress_bound(size: int) -> int:
    """zlib's compressBound: the most deflate can emit for `size` bytes of input."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


@dataclass
class _Part:
    """One file being written: its body member, and what was written to it so far."""

    path: Path
    file: BinaryIO
    deflate: Any = field(
        default_factory=lambda: zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    )
    size: int = 0  # compressed bytes in the file
    unflushed: int = 0  # input given to `deflate` since its last flush
    section: str = "messages"  # the list being written: "messages", then "documents"
    entries: int = 0

    def write(self, data: bytes) -> None:
        self.emit(self.deflate.compress(data))
        self.unflushed += len(data)

    def flush(self) -> None:
        self.emit(self.deflate.flush(zlib.Z_SYNC_FLUSH))
        self.unflushed = 0

    def emit(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)


class _PartWriter:
    def __init__(
        self, directory: Path, user_id: int, opt_outs: list[dict[str, Any]], limit: int | None
    ) -> None:
        self.directory = directory
        self.user_id = user_id
        self.opt_outs = opt_outs
        self.limit = limit
        self.exported_at = utcnow().isoformat()
        self.paths: list[Path] = []
        self.part: _Part | None = None
        # The largest entry an empty part can take (part 1's header, with the opt-outs, is
        # the longest); bigger entries are cut into pieces.
        self.capacity: int | None = None
        if limit is not None:
            room = limit - _RESERVE - len(self.header(1)) - 64
            self.capacity = room - (room >> 11) - 13  # inverse of _compress_bound, rounded down
            if self.capacity < MIN_PART_LIMIT // 4:
                raise ValueError("part_limit is too small for this user's opt-outs")

    def header(self, number: int) -> bytes:
        head = {
            "format": "parrot-export",
            "version": FORMAT_VERSION,
            "user_id": self.user_id,
            "exported_at": self.exported_at,
            "part": number,
            "opt_outs": self.opt_outs if number == 1 else [],
        }
        return _encode(head)[:-1] + b', "messages": ['  # the object stays open

    def add(self, section: str, entry: dict[str, Any], text_key: str) -> None:
        for piece in _pieces(entry, text_key, self.capacity):
            self.add_encoded(section, piece)

    def add_encoded(self, section: str, data: bytes) -> None:
        part = self.part or self.open()
        if not self.fits(part, len(self.lead(part, section)) + len(data)):
            part.flush()  # the real size, instead of a bound, of what is written so far
            if not self.fits(part, len(self.lead(part, section)) + len(data)):
                assert part.entries, "an entry larger than an empty part was not cut"
                self.close(part)
                part = self.open()
        part.write(self.lead(part, section) + data)
        part.section = section
        part.entries += 1

    def lead(self, part: _Part, section: str) -> bytes:
        """What goes before the next entry: a new list, a comma, or (first entry) nothing."""
        if part.section != section:
            return b'\n], "' + section.encode() + b'": [\n'
        return b",\n" if part.entries else b"\n"

    def fits(self, part: _Part, extra: int) -> bool:
        if self.limit is None:
            return True
        return part.size + _compress_bound(part.unflushed + extra) + _RESERVE <= self.limit

    def open(self) -> _Part:
        path = self.directory / f"part-{len(self.paths) + 1}.tmp"
        self.paths.append(path)
        self.part = _Part(path, path.open("wb"))
        self.part.write(self.header(len(self.paths)))
        return self.part

    def abandon(self) -> None:
        if self.part is not None:
            self.part.file.close()
            self.part = None

    def close(self, part: _Part) -> None:
        tail = b"\n]" if part.section == "documents" else b'\n], "documents": []'
        part.emit(part.deflate.compress(tail) + part.deflate.flush(zlib.Z_FINISH))
        part.file.close()
        self.part = None

    def finish(self) -> tuple[list[Path], list[int]]:
        """Close the last part, append every part's closing member, name the files."""
        self.close(self.part or self.open())
        count = len(self.paths)
        closing = gzip.compress(b', "parts": ' + str(count).encode() + b"}\n", mtime=0)
        stem = f"parrot-export-{self.user_id}"
        final: list[Path] = []
        for number, path in enumerate(self.paths, start=1):
            with path.open("ab") as file:
                file.write(closing)
            name = f"{stem}.json.gz" if count == 1 else f"{stem}-part{number}of{count}.json.gz"
            final.append(path.rename(path.with_name(name)))
        return final, [path.stat().st_size for path in final]


def _pieces(entry: dict[str, Any], text_key: str, capacity: int | None) -> list[bytes]:
    """The entry encoded, cut into pieces of at most `capacity` bytes when it is larger."""
    encoded = _encode(entry)
    if capacity is None or len(encoded) <= capacity:
        return [encoded]
    text: str = entry[text_key]
    frame = len(_encode({**entry, text_key: "", "piece": 10**9, "pieces": 10**9}))
    chars = max(1, (capacity - frame) // _MAX_BYTES_PER_CHAR)  # worst case: all escaped
    count = math.ceil(len(text) / chars)
    return [
        _encode(
            {**entry, text_key: text[i * chars : (i + 1) * chars], "piece": i + 1, "pieces": count}
        )
        for i in range(count)
    ]


def _join_pieces(entries: list[dict[str, Any]], text_key: str) -> list[dict[str, Any]]:
    joined: list[dict[str, Any]] = []
    for entry in entries:
        if entry.get("piece", 1) > 1 and joined and joined[-1]["id"] == entry["id"]:
            joined[-1][text_key] += entry[text_key]
            continue
        joined.append({k: v for k, v in entry.items() if k not in ("piece", "pieces")})
    return joined


def _part_number(document: dict[str, Any]) -> int:
    return int(document["part"])
