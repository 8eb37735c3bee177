"""The corpus store (servers, channels, messages, documents) on a real migrated database:
a SQLite file, and PostgreSQL when available."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import DuplicateUpload, InvalidInput, NotAllowed
from bot.core.storage import corpus, corpus_text, deletions, privacy
from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.tables import (
    Channel,
    Document,
    Message,
    OptOut,
    Server,
)
from tests.helpers.corpus_builders import (
    ALICE,
    BOB,
    CHANNEL,
    OTHER_SERVER,
    SERVER,
    T0,
    count,
    msg,
)

# --- servers and channels -------------------------------------------------------------


def test_ensure_server_creates_once_and_updates_the_name(session: Session) -> None:
    first = corpus.ensure_server(session, SERVER, "Guild")
    again = corpus.ensure_server(session, SERVER)
    renamed = corpus.ensure_server(session, SERVER, "Renamed")
    assert first.id == again.id == renamed.id == SERVER
    assert renamed.name == "Renamed"
    assert count(session, Server) == 1


@pytest.mark.parametrize("bad_id", [0, -5, 2**63, "123", True])
def test_ensure_server_rejects_ids_that_are_not_snowflakes(
    session: Session, bad_id: object
) -> None:
    with pytest.raises(InvalidInput):
        corpus.ensure_server(session, bad_id)  # pyright: ignore[reportArgumentType]


def test_channels_opt_in_and_out_of_collection(session: Session) -> None:
    assert not corpus.is_collecting(session, SERVER, CHANNEL)  # never configured
    corpus.set_channel_collect(session, SERVER, CHANNEL, True, added_by=ALICE)
    corpus.set_channel_collect(session, SERVER, 20, False)
    assert corpus.is_collecting(session, SERVER, CHANNEL)
    assert not corpus.is_collecting(session, SERVER, 20)
    assert [c.channel_id for c in corpus.list_channels(session, SERVER)] == [CHANNEL, 20]
    assert [c.channel_id for c in corpus.list_channels(session, SERVER, collecting_only=True)] == [
        CHANNEL
    ]
    assert corpus.list_channels(session, SERVER)[0].added_by == ALICE

    corpus.set_collecting(session, SERVER, False)  # the server-wide switch wins
    assert not corpus.is_collecting(session, SERVER, CHANNEL)
    corpus.set_collecting(session, SERVER, True)
    corpus.set_channel_collect(session, SERVER, CHANNEL, False)
    assert not corpus.is_collecting(session, SERVER, CHANNEL)


def test_channel_replies_are_configured_separately(session: Session) -> None:
    channel = corpus.set_channel_replies(session, SERVER, CHANNEL, True, 0.25)
    assert (channel.replies, channel.reply_chance, channel.collect) == (True, 0.25, False)
    with pytest.raises(InvalidInput):
        corpus.set_channel_replies(session, SERVER, CHANNEL, True, 1.5)


def test_a_server_can_override_the_generate_cooldown(session: Session) -> None:
    assert corpus.generate_cooldown_override(session, SERVER) is None  # no row yet
    corpus.set_generate_cooldown(session, SERVER, 45.0)
    assert corpus.generate_cooldown_override(session, SERVER) == 45.0
    assert corpus.generate_cooldown_override(session, OTHER_SERVER) is None
    corpus.set_generate_cooldown(session, SERVER, 0.0)  # no wait at all is a real setting
    assert corpus.generate_cooldown_override(session, SERVER) == 0.0
    corpus.set_generate_cooldown(session, SERVER, None)
    assert corpus.generate_cooldown_override(session, SERVER) is None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_generate_cooldown_is_refused_and_the_old_one_kept(
    session: Session, bad: float
) -> None:
    corpus.set_generate_cooldown(session, SERVER, 30.0)
    with pytest.raises(InvalidInput, match="seconds"):
        corpus.set_generate_cooldown(session, SERVER, bad)
    assert corpus.generate_cooldown_override(session, SERVER) == 30.0


# --- messages --------------------------------------------------------------------------


def test_add_messages_is_idempotent_on_the_message_id(session: Session) -> None:
    assert corpus.add_messages(session, SERVER, [msg(1), msg(2), msg(3)]) == 3
    assert corpus.add_messages(session, SERVER, [msg(2, "changed?"), msg(3), msg(4)]) == 1
    assert corpus_text.corpus_text(session, SERVER) == (
        "message 1\nmessage 2\nmessage 3\nmessage 4\n"
    )


def test_add_messages_skips_empty_duplicate_and_nul_content(session: Session) -> None:
    batch = [msg(1, "kept"), msg(2, " \n\t "), msg(3, "a\x00b"), msg(1, "same id again")]
    assert corpus.add_messages(session, SERVER, batch) == 2
    assert corpus_text.corpus_text(session, SERVER) == "kept\nab\n"
    assert corpus.add_messages(session, SERVER, []) == 0


def test_text_the_databases_cannot_hold_is_cleaned(session: Session) -> None:
    lone_surrogate = "half an emoji: \ud83d!"
    assert corpus.add_messages(session, SERVER, [msg(1, lone_surrogate)]) == 1
    assert corpus_text.corpus_text(session, SERVER) == "half an emoji: \N{REPLACEMENT CHARACTER}!\n"
    assert deletions.edit_message(session, 1, "nul\x00 and \udfff")
    assert corpus_text.corpus_text(session, SERVER) == "nul and \N{REPLACEMENT CHARACTER}\n"


def test_add_messages_counts_batches_larger_than_one_statement(session: Session) -> None:
    batch = [msg(i, f"m{i}", author=i % 7 + 1) for i in range(1, 2502)]
    assert corpus.add_messages(session, SERVER, batch) == 2501
    assert corpus.add_messages(session, SERVER, batch) == 0
    assert count(session, Message) == 2501


def test_add_messages_skips_authors_who_opted_out(session: Session) -> None:
    privacy.opt_out(session, BOB, SERVER)
    privacy.opt_out(session, 3003, None)  # everywhere
    batch = [msg(1, author=ALICE), msg(2, author=BOB), msg(3, author=3003)]
    assert corpus.add_messages(session, SERVER, batch) == 1
    assert corpus.add_messages(session, OTHER_SERVER, [msg(4, author=BOB)]) == 1
    assert corpus.add_messages(session, OTHER_SERVER, [msg(5, author=3003)]) == 0


def test_add_messages_stores_created_at_in_utc(session: Session) -> None:
    plus_two = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    corpus.add_messages(session, SERVER, [msg(1, created_at=plus_two)])
    stored = session.get(Message, 1, populate_existing=True)
    assert stored is not None
    assert stored.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)


def test_an_invalid_message_rejects_the_whole_batch(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(1)])
    bad = IncomingMessage(id=3, channel_id=CHANNEL, author_id=-1, content="x")
    with pytest.raises(InvalidInput, match="author id"):
        corpus.add_messages(session, SERVER, [msg(2), bad, msg(4)])
    assert count(session, Message) == 1
    assert corpus.add_messages(session, SERVER, [msg(5)]) == 1  # the session is still usable


def test_a_batch_failing_in_the_database_leaves_nothing_half_written(
    session: Session, engine: Engine
) -> None:
    # A trigger makes the database itself refuse one row in the second statement chunk.
    _refuse_message_id(session, engine, 1500)
    corpus.add_messages(session, SERVER, [msg(1)])
    batch = [msg(i) for i in range(2, 2002)]
    with pytest.raises(Exception, match="refused"):
        corpus.add_messages(session, SERVER, batch)
    assert count(session, Message) == 1
    assert corpus.add_messages(session, SERVER, [msg(9000)]) == 1
    session.commit()
    assert count(session, Message) == 2


def _refuse_message_id(session: Session, engine: Engine, message_id: int) -> None:
    if engine.dialect.name == "sqlite":
        session.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
                f"WHEN NEW.id = {message_id} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    else:
        session.execute(
            text(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.id = {message_id} THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
                "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
            )
        )


def test_an_edit_replaces_the_text_the_trainer_sees(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(1, "before"), msg(2, "other")])
    edited_at = T0 + timedelta(days=1)
    assert deletions.edit_message(session, 1, "after", edited_at)
    assert corpus_text.corpus_text(session, SERVER) == "after\nother\n"
    stored = session.get(Message, 1, populate_existing=True)
    assert stored is not None and stored.edited_at == edited_at
    assert not deletions.edit_message(session, 404, "never collected")


def test_an_edit_that_empties_a_message_removes_it(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(1, "before"), msg(2, "other")])
    assert deletions.edit_message(session, 1, "   ")
    assert corpus_text.corpus_text(session, SERVER) == "other\n"


def test_delete_messages(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(i) for i in range(1, 6)])
    corpus.add_messages(session, SERVER, [msg(6, channel=20)])
    assert deletions.delete_messages(session, [1, 2, 2, 404]) == 2
    assert deletions.delete_message(session, 3)
    assert not deletions.delete_message(session, 3)
    assert deletions.delete_channel_messages(session, SERVER, 20) == 1
    assert corpus_text.corpus_text(session, SERVER) == "message 4\nmessage 5\n"


# --- documents -------------------------------------------------------------------------


def test_add_document_normalises_and_stores_the_text(session: Session) -> None:
    data = "\ufeffFirst line\r\nSecond line\rThird ✓".encode()
    document = corpus.add_document(session, SERVER, ALICE, "C:\\Users\\a\\story.txt", data, 1000)
    assert document.text == "First line\nSecond line\nThird ✓"
    assert document.filename == "story.txt"
    assert document.size_bytes == len(data)
    assert [d.filename for d in corpus.list_documents(session, SERVER)] == ["story.txt"]
    corpus.add_messages(session, SERVER, [msg(1, "hi")])
    assert corpus_text.corpus_text(session, SERVER) == "First line\nSecond line\nThird ✓\nhi\n"


def test_a_duplicate_upload_is_reported_not_stored(session: Session) -> None:
    corpus.add_document(session, SERVER, ALICE, "a.txt", b"same text\n", 1000)
    with pytest.raises(DuplicateUpload, match=r"b\.txt .* a\.txt"):
        corpus.add_document(session, SERVER, BOB, "b.txt", b"same text\r\n", 1000)
    corpus.add_document(session, OTHER_SERVER, BOB, "b.txt", b"same text\n", 1000)
    assert count(session, Document) == 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"caf\xe9 latin-1", "not valid UTF-8"),
        (b"text\x00with NUL", "NUL"),
        (b"x" * 101, "limited to 100 bytes"),
        (b" \n\r\n ", "no text"),
        (b"", "no text"),
    ],
)
def test_bad_uploads_are_rejected_with_a_clear_reason(
    session: Session, data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        corpus.add_document(session, SERVER, ALICE, "bad.txt", data, 100)
    assert count(session, Document) == 0


def test_an_opted_out_user_cannot_upload(session: Session) -> None:
    privacy.opt_out(session, ALICE, SERVER)
    with pytest.raises(NotAllowed):
        corpus.add_document(session, SERVER, ALICE, "a.txt", b"text", 100)
    assert count(session, Document) == 0


def test_delete_document(session: Session) -> None:
    document = corpus.add_document(session, SERVER, ALICE, "a.txt", b"text", 100)
    assert not deletions.delete_document(session, OTHER_SERVER, document.id)
    assert deletions.delete_document(session, SERVER, document.id)
    assert count(session, Document) == 0


# --- the whole corpus ------------------------------------------------------------------


def test_clear_corpus_removes_one_servers_text_and_keeps_its_settings(session: Session) -> None:
    corpus.set_channel_collect(session, SERVER, CHANNEL, True, added_by=ALICE)
    privacy.opt_out(session, BOB, SERVER)
    corpus.add_messages(session, SERVER, [msg(1), msg(2), msg(3, channel=20)])
    corpus.add_messages(session, OTHER_SERVER, [msg(4)])
    corpus.add_document(session, SERVER, ALICE, "a.txt", b"first upload", 100)
    corpus.add_document(session, OTHER_SERVER, ALICE, "a.txt", b"first upload", 100)
    stale = session.get(Message, 1)  # loaded before the clear

    assert deletions.clear_corpus(session, SERVER) == privacy.PurgeCounts(messages=3, documents=1)
    assert corpus_text.corpus_text(session, SERVER) == ""
    assert corpus_text.corpus_text(session, OTHER_SERVER) == "first upload\nmessage 4\n"
    assert session.get(Message, 1) is None and stale is not None
    assert count(session, Server) == 2
    assert count(session, Channel, Channel.server_id == SERVER) == 1
    assert count(session, OptOut) == 1
    assert deletions.clear_corpus(session, SERVER) == privacy.PurgeCounts()  # nothing left


def test_clear_corpus_leaves_the_callers_transaction_to_the_caller(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        corpus.add_messages(session, SERVER, [msg(1), msg(2)])
    with session_factory() as session:
        assert deletions.clear_corpus(session, SERVER).messages == 2
        session.rollback()  # the caller changed its mind: nothing was committed
    with session_factory() as session:
        assert count(session, Message) == 2


# --- concurrency -------------------------------------------------------------------------


def test_concurrent_writers_lose_no_rows(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        corpus.ensure_server(session, SERVER)
    errors: list[BaseException] = []

    def writer(first_id: int) -> Callable[[], None]:
        def run() -> None:
            try:
                for batch in range(20):
                    start = first_id + batch * 25
                    with session_factory.begin() as session:
                        # Read first, then write: the pattern that fails without BEGIN IMMEDIATE.
                        privacy.is_opted_out(session, ALICE, SERVER)
                        corpus.add_messages(
                            session, SERVER, [msg(i) for i in range(start, start + 25)]
                        )
            except BaseException as error:
                errors.append(error)

        return run

    threads = [threading.Thread(target=writer(base)) for base in (1, 100_001)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        assert corpus_text.corpus_stats(session, SERVER).messages == 2 * 20 * 25
