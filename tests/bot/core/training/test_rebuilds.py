"""Rebuilds owed to privacy requests and deletions: queue order, debts that wait for a live
run, and the deletion bounds. Real databases (SQLite file and PostgreSQL), no workers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.core.kinds import RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus, deletions
from bot.core.storage.tables import Server, TrainedModel, TrainingRun, utcnow
from bot.core.training import queue, rebuilds
from tests.helpers.corpus_builders import OTHER_SERVER, SERVER, msg

LINE = "a line of chat long enough to count for something in the corpus"


def seed(sessions: sessionmaker[Session], server_id: int, lines: int = 100) -> None:
    with sessions() as session, session.begin():
        corpus.ensure_server(session, server_id)
        corpus.add_messages(
            session, server_id, [msg(server_id * 1000 + i, LINE) for i in range(lines)]
        )


def queue_one(sessions: sessionmaker[Session], server_id: int, trigger: RunTrigger) -> int:
    return queue.queue_run(
        sessions,
        server_id,
        trigger=trigger,
        mode=RunMode.FINE_TUNE,
        arch="gru",
        requested_by=None,
        notify_channel_id=None,
        minimum_chars=10,
    )


def add_active_model(session: Session, server_id: int) -> None:
    session.add(
        TrainedModel(
            server_id=server_id,
            checkpoint_path=f"/nowhere/{server_id}.ckpt",
            arch="gru",
            param_count=1,
            chars_trained=1,
            active=True,
        )
    )
    session.flush()


def test_a_rebuild_is_claimed_before_earlier_scheduled_runs(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, SERVER)
    seed(session_factory, OTHER_SERVER)
    scheduled = queue_one(session_factory, SERVER, RunTrigger.SCHEDULE)
    with session_factory() as session, session.begin():
        rebuilds.request_rebuild(session, OTHER_SERVER)  # no live run: owed
    [rebuild] = rebuilds.queue_owed_rebuilds(session_factory, minimum_chars=10)
    claimed = queue.claim(session_factory, None)
    assert claimed is not None and (claimed.id, claimed.rebuild) == (rebuild, True)
    assert rebuild > scheduled  # queued later, claimed first


def test_a_queued_run_becomes_the_rebuild_and_a_running_one_leaves_it_owed(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, SERVER)
    seed(session_factory, OTHER_SERVER)
    queued = queue_one(session_factory, SERVER, RunTrigger.ADMIN)
    running = queue_one(session_factory, OTHER_SERVER, RunTrigger.ADMIN)
    assert queue.claim(session_factory, running) is not None
    with session_factory() as session, session.begin():
        rebuilds.request_rebuild(session, SERVER)
        rebuilds.request_rebuild(session, OTHER_SERVER)
    with session_factory() as session:
        converted = session.get(TrainingRun, queued)
        assert converted is not None
        assert (converted.rebuild, converted.mode) == (True, RunMode.SCRATCH)
        assert rebuilds.rebuild_pending(session, SERVER)
        assert rebuilds.rebuild_pending(session, OTHER_SERVER)
    # Never two live runs for a server: the owed rebuild waits for the running one.
    assert rebuilds.queue_owed_rebuilds(session_factory, minimum_chars=10) == []
    with session_factory() as session, session.begin():
        row = session.get(TrainingRun, running)
        assert row is not None
        row.status = RunStatus.SUCCEEDED
    [owed] = rebuilds.queue_owed_rebuilds(session_factory, minimum_chars=10)
    with session_factory() as session:
        row = session.get(TrainingRun, owed)
        assert row is not None and (row.server_id, row.rebuild) == (OTHER_SERVER, True)


def test_a_corpus_too_small_to_train_cancels_the_debt(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, SERVER, lines=1)
    with session_factory() as session, session.begin():
        rebuilds.request_rebuild(session, SERVER)
    assert rebuilds.queue_owed_rebuilds(session_factory, minimum_chars=10_000) == []
    with session_factory() as session:
        assert not rebuilds.rebuild_pending(session, SERVER)


def test_deletions_past_the_fraction_or_the_days_owe_a_rebuild(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, SERVER)
    seed(session_factory, OTHER_SERVER)
    with session_factory() as session, session.begin():
        add_active_model(session, SERVER)
        add_active_model(session, OTHER_SERVER)
        # 4 of 100 lines: under 5%.
        deletions.delete_messages(session, [SERVER * 1000 + i for i in range(4)])
        deletions.delete_messages(session, [OTHER_SERVER * 1000])
    with session_factory() as session, session.begin():
        server = session.get(Server, SERVER)
        assert server is not None and server.deleted_chars_since_root == 4 * len(LINE)
        assert rebuilds.request_rebuilds_after_deletions(session, fraction=0.05, days=30) == []
        for edited in (50, 51):  # an edit's old text counts as deleted too: now 6%
            deletions.edit_message(session, SERVER * 1000 + edited, "short")
        assert rebuilds.request_rebuilds_after_deletions(session, fraction=0.05, days=30) == [
            SERVER
        ]
        later = utcnow() + timedelta(days=31)
        assert rebuilds.request_rebuilds_after_deletions(
            session, fraction=0.05, days=30, now=later
        ) == [OTHER_SERVER]


def test_an_admin_run_goes_ahead_of_twenty_scheduled_ones(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue #14, the queue is fair: admin `/train` runs before the schedule's, then the
    schedule's in the order they came (one live run per server: round-robin)."""
    servers = [5000 + i for i in range(21)]
    for server_id in servers:
        seed(session_factory, server_id, lines=5)
    scheduled = [queue_one(session_factory, s, RunTrigger.SCHEDULE) for s in servers[:20]]
    admin = queue_one(session_factory, servers[20], RunTrigger.ADMIN)
    claimed = [queue.claim(session_factory, None) for _ in range(3)]
    assert [run.id for run in claimed if run is not None] == [admin, *scheduled[:2]]
