"""The user export on a real migrated database (SQLite and PostgreSQL): streamed into gzip
JSON parts, each a complete document within the size limit, that add up to everything."""

from __future__ import annotations

import gzip
import json
import random
import string
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage import corpus, deletions, privacy
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.storage.export import (
    MIN_PART_LIMIT,
    ExportFiles,
    load_export,
    write_user_export,
)
from bot.core.storage.tables import Base
from tests.helpers.corpus_builders import ALICE, BOB, OTHER_SERVER, SERVER, T0, msg

# 60,000 go through the fake Discord in tests/bot/exts/test_privacy.py; fewer suffice here.
HEAVY_MESSAGES = 20_000
SMALL_LIMIT = 256 * 1024


def heavy_content(message_id: int) -> str:
    # Digits of a hash-like number keep gzip from shrinking the parts to nothing.
    return f"message {message_id} of alice: {message_id * 2654435761 % 10**12:012d} ünï"


def seed_heavy_user(sessions: sessionmaker[Session], count: int = HEAVY_MESSAGES) -> None:
    """`count` messages by Alice over two servers, and a few of Bob's, in bulk."""
    with sessions.begin() as session:
        for server, first in ((SERVER, 1), (OTHER_SERVER, count // 2 + 1)):
            last = count // 2 if server == SERVER else count
            corpus.add_messages(
                session,
                server,
                [msg(i, heavy_content(i), author=ALICE) for i in range(first, last + 1)],
            )
        corpus.add_messages(session, SERVER, [msg(count + i, author=BOB) for i in range(1, 4)])


def parts_of(files: ExportFiles) -> list[dict[str, Any]]:
    """Each part parsed on its own (gunzip, then JSON), as any user's tools would."""
    return [json.loads(gzip.decompress(path.read_bytes())) for path in files.paths]


def test_the_export_gathers_everything_across_servers(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with session_factory.begin() as session:
        corpus.add_messages(session, SERVER, [msg(1, author=ALICE), msg(2, author=BOB)])
        corpus.add_messages(session, OTHER_SERVER, [msg(3, author=ALICE)])
        corpus.add_document(session, SERVER, ALICE, "alice.txt", b"alice here", 100)
        corpus.add_document(session, OTHER_SERVER, ALICE, "alice.txt", b"alice there", 100)
        deletions.edit_message(session, 1, "edited", T0 + timedelta(days=2))
        privacy.opt_out(session, ALICE, 999)

    files = write_user_export(session_factory, ALICE, directory=tmp_path / "export")
    assert [path.name for path in files.paths] == [f"parrot-export-{ALICE}.json.gz"]
    [part] = parts_of(files)
    assert (part["format"], part["version"], part["part"], part["parts"]) == (
        "parrot-export",
        2,
        1,
        1,
    )
    assert part["user_id"] == ALICE
    assert [(m["id"], m["server_id"], m["content"]) for m in part["messages"]] == [
        (1, SERVER, "edited"),
        (3, OTHER_SERVER, "message 3"),
    ]
    assert part["messages"][0]["edited_at"] == "2026-01-03T12:00:00+00:00"
    assert part["messages"][0]["created_at"] == "2026-01-01T12:00:01+00:00"
    assert [d["text"] for d in part["documents"]] == ["alice here", "alice there"]
    assert part["opt_outs"] == [
        {"server_id": 999, "everywhere": False, "created_at": part["opt_outs"][0]["created_at"]}
    ]
    assert (files.messages, files.documents) == (2, 2)


def test_someone_with_nothing_stored_gets_one_empty_part(
    session_factory: sessionmaker[Session],
) -> None:
    files = write_user_export(session_factory, 424242)
    try:
        [part] = parts_of(files)
        assert (part["messages"], part["documents"], part["opt_outs"]) == ([], [], [])
        assert files.paths[0].parent == files.directory
    finally:
        files.delete()
    assert not files.directory.exists()  # the temporary directory goes with the files


def test_a_heavy_users_export_comes_in_complete_parts_within_the_limit(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seed_heavy_user(session_factory)
    letters = random.Random(7)
    big_text = "".join(letters.choices(string.ascii_letters + ' \n"\\é', k=700_000))
    with session_factory.begin() as session:
        corpus.add_document(session, SERVER, ALICE, "big.txt", big_text.encode(), 10**7)
        corpus.add_document(session, SERVER, ALICE, "small.txt", b"small upload", 100)
        privacy.opt_out(session, ALICE, 999)

    files = write_user_export(
        session_factory, ALICE, part_limit=SMALL_LIMIT, directory=tmp_path / "export"
    )
    parts = parts_of(files)
    count = len(parts)
    assert count >= 4
    assert files.sizes == [path.stat().st_size for path in files.paths]
    assert max(files.sizes) <= SMALL_LIMIT
    assert [(p["part"], p["parts"], p["user_id"]) for p in parts] == [
        (i, count, ALICE) for i in range(1, count + 1)
    ]
    assert [path.name for path in files.paths] == [
        f"parrot-export-{ALICE}-part{i}of{count}.json.gz" for i in range(1, count + 1)
    ]
    assert [len(p["opt_outs"]) for p in parts] == [1] + [0] * (count - 1)

    messages = [m for p in parts for m in p["messages"]]
    assert len(messages) == HEAVY_MESSAGES == files.messages
    assert [m["id"] for m in messages] == list(range(1, HEAVY_MESSAGES + 1))
    assert all(m["content"] == heavy_content(m["id"]) for m in messages)
    assert {m["server_id"] for m in messages} == {SERVER, OTHER_SERVER}

    # The big upload does not fit one part: it is cut into pieces that keep its fields.
    pieces = [d for p in parts for d in p["documents"] if d["filename"] == "big.txt"]
    assert len(pieces) > 1
    assert [d["piece"] for d in pieces] == list(range(1, len(pieces) + 1))
    assert {d["pieces"] for d in pieces} == {len(pieces)}
    assert "".join(d["text"] for d in pieces) == big_text

    whole = load_export([path.read_bytes() for path in reversed(files.paths)])
    assert [d["text"] for d in whole["documents"]] == [big_text, "small upload"]
    assert "piece" not in whole["documents"][0]
    assert len(whole["messages"]) == HEAVY_MESSAGES
    with pytest.raises(ValueError, match="incomplete"):
        load_export([path.read_bytes() for path in files.paths[1:]])


def test_with_the_default_limit_a_heavy_user_gets_one_file(
    session_factory: sessionmaker[Session],
) -> None:
    seed_heavy_user(session_factory)
    files = write_user_export(session_factory, ALICE)
    try:
        [part] = parts_of(files)
        assert len(part["messages"]) == HEAVY_MESSAGES
        assert files.sizes[0] < 10 * 1024 * 1024
    finally:
        files.delete()


def test_a_limit_below_the_minimum_is_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="at least"):
        write_user_export(session_factory, ALICE, part_limit=MIN_PART_LIMIT - 1)


def test_an_export_that_fails_midway_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database without a documents table: the export fails after writing the messages.
    engine = make_engine(f"sqlite:///{tmp_path / 'partial.db'}")
    tables = [Base.metadata.tables[name] for name in ("servers", "messages", "opt_outs")]
    Base.metadata.create_all(engine, tables=tables)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        corpus.add_messages(session, SERVER, [msg(i, author=ALICE) for i in range(1, 501)])
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    try:
        with pytest.raises(OperationalError, match="documents"):
            write_user_export(sessions, ALICE, message_page_rows=100)
    finally:
        engine.dispose()
    assert list(temp_dir.iterdir()) == []
