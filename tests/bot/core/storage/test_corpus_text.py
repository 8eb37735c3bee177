"""The training text stream and corpus sizes on a real migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bot.core.kinds import RunStatus
from bot.core.storage import corpus, corpus_text
from bot.core.storage.corpus_text import CorpusStats
from tests.helpers.corpus_builders import (
    ALICE,
    BOB,
    OTHER_SERVER,
    SERVER,
    T0,
    add_run,
    msg,
)

# --- training text and statistics ------------------------------------------------------


def test_corpus_text_is_documents_then_messages_in_id_order(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(30, "c"), msg(10, "a"), msg(20, "b\nb")])
    corpus.add_document(session, SERVER, ALICE, "1.txt", b"doc one", 100)
    corpus.add_document(session, SERVER, ALICE, "2.txt", b"doc two\n", 100)
    corpus.add_messages(session, OTHER_SERVER, [msg(15, "elsewhere")])
    expected = "doc one\ndoc two\n\na\nb\nb\nc\n"
    assert corpus_text.corpus_text(session, SERVER) == expected
    chunks = list(corpus_text.iter_corpus_text(session, SERVER, page_rows=1))
    assert "".join(chunks) == expected
    assert len(chunks) == 5  # one per document, one per page of messages
    assert corpus_text.corpus_text(session, 333) == ""


def test_max_chars_keeps_the_newest_text(session: Session) -> None:
    corpus.add_document(session, SERVER, ALICE, "1.txt", b"first document", 100)
    corpus.add_document(session, SERVER, ALICE, "2.txt", b"second", 100)
    corpus.add_messages(session, SERVER, [msg(i, "x" * (i % 4) + str(i)) for i in range(1, 12)])
    full = corpus_text.corpus_text(session, SERVER)
    for page_rows in (1, 3, 2000):
        for max_chars in range(1, len(full) + 3):
            chunks = corpus_text.iter_corpus_text(
                session, SERVER, max_chars=max_chars, page_rows=page_rows
            )
            assert "".join(chunks) == full[-max_chars:], (page_rows, max_chars)
    assert corpus_text.corpus_text(session, SERVER, max_chars=0) == ""


def test_stats_match_the_training_text(session: Session) -> None:
    corpus.add_messages(
        session,
        SERVER,
        [msg(1, author=ALICE), msg(2, author=BOB, channel=20), msg(3, "✓✓", author=BOB)],
    )
    corpus.add_document(session, SERVER, ALICE, "a.txt", "ünïcode".encode(), 100)
    stats = corpus_text.corpus_stats(session, SERVER)
    assert stats == CorpusStats(
        messages=3,
        documents=1,
        chars=len(corpus_text.corpus_text(session, SERVER)),
        authors=2,
        channels=2,
    )
    assert corpus_text.corpus_stats(session, 333) == CorpusStats(0, 0, 0, 0, 0)


def test_chars_since_last_success_counts_what_came_after_its_start(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(1, "old"), msg(2, "older")])
    assert corpus_text.chars_since_last_success(session, SERVER) == len("old\nolder\n")

    add_run(session, SERVER, RunStatus.SUCCEEDED, T0 + timedelta(seconds=1, milliseconds=500))
    add_run(session, SERVER, RunStatus.FAILED, T0 + timedelta(days=30))  # ignored
    assert corpus_text.chars_since_last_success(session, SERVER) == len("older\n")

    add_run(session, SERVER, RunStatus.SUCCEEDED, T0 + timedelta(hours=1))
    corpus.add_messages(session, SERVER, [msg(5000, "new message")])  # T0 + 5000 s
    corpus.add_document(session, SERVER, ALICE, "a.txt", b"uploaded now", 100)
    assert corpus_text.chars_since_last_success(session, SERVER) == len(
        "new message\nuploaded now\n"
    )
    assert corpus_text.chars_since_last_success(session, OTHER_SERVER) == 0
