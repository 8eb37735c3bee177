"""Opt-outs racing ingest on PostgreSQL, driven step by step with real connections.

The dangerous window is between a batch's opt-out check and its insert: an opt-out that
commits inside it finds nothing to purge yet, and the batch then stores the user's words.
The ingest below runs in a thread that stops just before its INSERT (a SQLAlchemy
`before_cursor_execute` hook on its own connection waits on an Event), the opt-out runs in
a second thread, and the test releases the ingest only once the opt-out has either
returned (the race is open) or is seen waiting for a lock in `pg_locks` (it is closed).

SQLite is not tested here: `BEGIN IMMEDIATE` gives each writer the whole database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage import corpus, privacy
from bot.core.storage.db import make_engine, make_session_factory, upgrade_to_head
from bot.core.storage.tables import Document, Message
from tests.helpers.corpus_builders import ALICE, BOB, CHANNEL, SERVER, count, msg

pytestmark = pytest.mark.postgres
NEW_SERVER = 333  # no row yet when the race starts: nothing for a row lock to hold
STEP_TIMEOUT_S = 30.0  # only a guard against a hang; no assertion depends on timing


@pytest.fixture
def postgres_engine(_postgres_schema_url: str) -> Iterator[Engine]:
    upgrade_to_head(_postgres_schema_url)
    engine = make_engine(_postgres_schema_url)
    yield engine
    engine.dispose()


class PausedBeforeInsert:
    """Runs `work` in its own transaction in a thread, stopping before its first INSERT
    into `table` until `release()`; then commits."""

    def __init__(self, engine: Engine, table: str, work: Callable[[Session], object]) -> None:
        self.engine, self.table, self.work = engine, table, work
        self.reached = threading.Event()
        self.go = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        try:
            with self.engine.connect() as connection:
                event.listen(connection, "before_cursor_execute", self.before_execute)
                with Session(bind=connection) as session, session.begin():
                    self.work(session)
        except BaseException as error:
            self.errors.append(error)
            self.reached.set()

    def before_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        inserting = statement.lstrip().upper().startswith(f"INSERT INTO {self.table.upper()} ")
        if inserting and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(STEP_TIMEOUT_S), "the test never released the ingest"

    def release(self) -> None:
        self.go.set()
        self.thread.join(STEP_TIMEOUT_S)
        assert not self.thread.is_alive() and self.errors == []


class OptOutThread:
    """`privacy.opt_out` in its own transaction (committed) in a thread."""

    def __init__(self, sessions: sessionmaker[Session], server_id: int | None) -> None:
        self.sessions, self.server_id = sessions, server_id
        self.pid: int | None = None
        self.started = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        try:
            with self.sessions.begin() as session:
                self.pid = session.scalar(text("SELECT pg_backend_pid()"))
                self.started.set()
                privacy.opt_out(session, ALICE, self.server_id)
        except BaseException as error:
            self.errors.append(error)
        finally:
            self.started.set()

    def returned_or_blocked(self, engine: Engine) -> bool:
        """Wait until the opt-out has returned (True) or waits for a lock (False)."""
        assert self.started.wait(STEP_TIMEOUT_S)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        waiting = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
        with engine.connect() as watcher:
            while time.monotonic() < deadline:
                if not self.thread.is_alive():
                    return True
                if watcher.scalar(waiting, {"pid": self.pid}):
                    return False
                watcher.rollback()  # a fresh view of pg_locks on the next poll
                time.sleep(0.01)
        raise AssertionError("the opt-out neither returned nor waited for a lock")


def store_batch(session: Session) -> None:
    corpus.add_messages(
        session, NEW_SERVER, [msg(1, "alice's words", author=ALICE), msg(2, author=BOB)]
    )


def store_upload(session: Session) -> None:
    corpus.add_document(session, NEW_SERVER, ALICE, "alice.txt", b"alice's upload", 100)


@pytest.mark.parametrize("scope", ["everywhere", "that server"])
@pytest.mark.parametrize(
    ("table", "ingest"), [("messages", store_batch), ("documents", store_upload)]
)
def test_an_opt_out_during_a_new_servers_first_ingest_never_lets_it_store_the_user(
    postgres_engine: Engine,
    scope: str,
    table: str,
    ingest: Callable[[Session], object],
) -> None:
    sessions = make_session_factory(postgres_engine)
    batch = PausedBeforeInsert(postgres_engine, table, ingest)
    batch.thread.start()
    # The batch created the server row and checked the opt-outs: Alice is not opted out.
    assert batch.reached.wait(STEP_TIMEOUT_S) and batch.errors == []

    opt_out = OptOutThread(sessions, None if scope == "everywhere" else NEW_SERVER)
    returned_first = opt_out.returned_or_blocked(postgres_engine)
    batch.release()
    opt_out.thread.join(STEP_TIMEOUT_S)
    assert not opt_out.thread.is_alive() and opt_out.errors == []

    with sessions() as session:
        assert privacy.is_opted_out(session, ALICE, NEW_SERVER)
        stored = count(session, Message, Message.author_id == ALICE) + count(
            session, Document, Document.uploader_id == ALICE
        )
    # Before the fix the opt-out returned at once and the batch stored Alice afterwards.
    assert (returned_first, stored) == (False, 0)


def test_an_ingest_after_a_global_opt_out_skips_the_user_in_a_new_server(
    postgres_engine: Engine,
) -> None:
    sessions = make_session_factory(postgres_engine)
    with sessions.begin() as session:
        privacy.opt_out(session, ALICE)
    with sessions.begin() as session:
        corpus.add_messages(session, NEW_SERVER, [msg(1), msg(2, author=BOB)])
        corpus.add_messages(session, SERVER, [msg(3, author=ALICE, channel=CHANNEL)])
    with sessions() as session:
        assert count(session, Message, Message.author_id == ALICE) == 0
        assert count(session, Message) == 1
