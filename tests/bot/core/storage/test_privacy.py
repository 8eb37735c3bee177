"""Opt-outs and purges on a real migrated database (SQLite and PostgreSQL); the export is
in test_export.py, and opt-outs racing new servers in test_privacy_races.py."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from bot.core.kinds import RunStatus
from bot.core.storage import corpus, privacy
from bot.core.storage.privacy import PurgeCounts
from bot.core.storage.tables import (
    EVERYWHERE,
    Channel,
    Document,
    Message,
    OptOut,
    Server,
    TrainedModel,
    TrainingRun,
)
from tests.helpers.corpus_builders import (
    ALICE,
    BOB,
    CHANNEL,
    OTHER_SERVER,
    SERVER,
    T0,
    add_run,
    count,
    msg,
)

# --- privacy ---------------------------------------------------------------------------


def _two_servers_of_content(session: Session) -> None:
    corpus.add_messages(session, SERVER, [msg(1, author=ALICE), msg(2, author=BOB)])
    corpus.add_messages(session, OTHER_SERVER, [msg(3, author=ALICE), msg(4, author=BOB)])
    corpus.add_document(session, SERVER, ALICE, "alice.txt", b"alice here", 100)
    corpus.add_document(session, OTHER_SERVER, ALICE, "alice.txt", b"alice there", 100)


def test_opting_out_in_one_server_removes_what_the_user_gave_there(session: Session) -> None:
    _two_servers_of_content(session)
    counts = privacy.opt_out(session, ALICE, SERVER)
    assert counts == PurgeCounts(messages=1, documents=1)
    assert privacy.is_opted_out(session, ALICE, SERVER)
    assert not privacy.is_opted_out(session, ALICE, OTHER_SERVER)
    assert not privacy.is_opted_out(session, ALICE, None)
    assert count(session, Message, Message.author_id == ALICE, Message.server_id == SERVER) == 0
    assert count(session, Document, Document.server_id == SERVER) == 0
    assert count(session, Message, Message.author_id == ALICE) == 1  # the other server's
    assert privacy.opt_out(session, ALICE, SERVER) == PurgeCounts()  # twice is harmless


def test_opting_out_everywhere_removes_everything_the_user_gave(session: Session) -> None:
    _two_servers_of_content(session)
    assert privacy.opt_out(session, ALICE) == PurgeCounts(messages=2, documents=2)
    assert privacy.is_opted_out(session, ALICE, SERVER)
    assert privacy.is_opted_out(session, ALICE, None)
    assert count(session, Message, Message.author_id == ALICE) == 0
    assert count(session, Document) == 0
    assert count(session, Message) == 2  # Bob's


def test_opting_in_lifts_only_the_same_scope(session: Session) -> None:
    privacy.opt_out(session, ALICE, SERVER)
    privacy.opt_out(session, ALICE)
    assert privacy.opt_in(session, ALICE, SERVER)
    assert privacy.is_opted_out(session, ALICE, SERVER)  # still opted out everywhere
    assert privacy.opt_in(session, ALICE)
    assert not privacy.is_opted_out(session, ALICE, SERVER)
    assert not privacy.opt_in(session, ALICE)
    assert corpus.add_messages(session, SERVER, [msg(1, author=ALICE)]) == 1


def test_purging_a_user_leaves_no_rows_of_theirs(session: Session) -> None:
    _two_servers_of_content(session)
    corpus.set_channel_collect(session, SERVER, CHANNEL, True, added_by=ALICE)
    add_run(session, SERVER, RunStatus.QUEUED, None)

    assert privacy.purge_user(session, ALICE, SERVER) == PurgeCounts(messages=1, documents=1)
    assert count(session, Message, Message.author_id == ALICE) == 1
    assert count(session, Channel, Channel.added_by == ALICE) == 0
    assert count(session, TrainingRun, TrainingRun.requested_by == ALICE) == 0

    assert privacy.purge_user(session, ALICE) == PurgeCounts(messages=1, documents=1)
    assert count(session, Message, Message.author_id == ALICE) == 0
    assert count(session, Document, Document.uploader_id == ALICE) == 0
    assert count(session, Message) == 2  # Bob's


def test_purging_a_server_leaves_no_rows_of_it(session: Session) -> None:
    _two_servers_of_content(session)
    corpus.set_channel_collect(session, SERVER, CHANNEL, True)
    run = add_run(session, SERVER, RunStatus.SUCCEEDED, T0)
    session.add(
        TrainedModel(
            server_id=SERVER,
            run_id=run.id,
            checkpoint_path="x.ckpt",
            arch="gru",
            param_count=1,
            chars_trained=1,
        )
    )
    privacy.opt_out(session, 5005, SERVER)
    privacy.opt_out(session, 6006)  # everywhere: not the server's to delete

    counts = privacy.purge_server(session, SERVER)
    assert counts["servers"] == 1 and counts["messages"] == 2 and counts["opt_outs"] == 1
    for model in (Message, Document, Channel, TrainingRun, TrainedModel, OptOut):
        assert count(session, model, model.server_id == SERVER) == 0
    assert session.get(Server, SERVER) is None
    assert count(session, Message, Message.server_id == OTHER_SERVER) == 2
    assert count(session, OptOut, OptOut.server_id == EVERYWHERE) == 1


def test_an_opt_out_during_an_ingest_still_removes_the_batch(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        corpus.ensure_server(session, SERVER)
    ingest = session_factory()
    ingest.begin()
    corpus.add_messages(ingest, SERVER, [msg(1, author=ALICE), msg(2, author=BOB)])
    errors: list[BaseException] = []

    def opt_out() -> None:
        try:
            with session_factory.begin() as session:
                privacy.opt_out(session, ALICE, SERVER)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=opt_out)
    thread.start()
    thread.join(0.5)
    # The opt-out waits for the batch's transaction (an advisory lock on PostgreSQL, the
    # write lock on SQLite) instead of purging before the batch lands.
    assert thread.is_alive()
    ingest.commit()
    ingest.close()
    thread.join()
    assert errors == []
    with session_factory() as session:
        assert count(session, Message, Message.author_id == ALICE) == 0
        assert count(session, Message) == 1


def test_the_everywhere_id_means_everywhere(session: Session) -> None:
    _two_servers_of_content(session)
    assert privacy.opt_out(session, ALICE, EVERYWHERE) == PurgeCounts(messages=2, documents=2)
    assert privacy.is_opted_out(session, ALICE, None)
    assert privacy.opt_in(session, ALICE, EVERYWHERE)
    assert not privacy.is_opted_out(session, ALICE, SERVER)
