"""Rebuilds from the root: runs that retrain a server's model without text that was deleted
or forgotten, since a fine-tune would start from weights that may hold it.

A privacy request or enough ordinary deletions owe a server a rebuild (`request_rebuild`,
`request_rebuilds_after_deletions`). A queued run becomes the rebuild at once; with a run
in flight the debt waits in `servers.rebuild_requested_at` until `queue_owed_rebuilds` can
queue it, so a server never has two live runs. Rebuilds go first in the queue
(`queue.REBUILD_PRIORITY`), train from scratch, and always activate (`training.outcome`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.kinds import LIVE_STATUSES, RunMode, RunStatus, RunTrigger
from bot.core.storage import corpus_text
from bot.core.storage.sql import as_utc
from bot.core.storage.tables import Server, TrainedModel, TrainingRun, utcnow
from bot.core.training.queue import REBUILD_PRIORITY


def request_rebuild(session: Session, server_id: int) -> None:
    """Owe the server a rebuild from its lineage's root, in the caller's transaction.

    A queued run becomes that rebuild at once (first in the queue); with a run in flight
    the request waits on the server row until `queue_owed_rebuilds` can queue it, so the
    server never has two live runs.
    """
    server = session.get(Server, server_id)
    if server is None:
        return
    queued = session.scalars(
        select(TrainingRun).where(
            TrainingRun.server_id == server_id, TrainingRun.status == RunStatus.QUEUED
        )
    ).first()
    if queued is not None:
        queued.rebuild, queued.priority, queued.mode = True, REBUILD_PRIORITY, RunMode.SCRATCH
        server.rebuild_requested_at = None
        return
    server.rebuild_requested_at = server.rebuild_requested_at or utcnow()


def request_rebuilds_after_deletions(
    session: Session, *, fraction: float, days: float, now: datetime | None = None
) -> list[int]:
    """Owe a rebuild to every server with a model whose deletions since its model's root
    passed a bound: more than `fraction` of the corpus (what is left plus what was deleted),
    or a first deletion more than `days` ago. Until then the lineage guard keeps the deleted
    text from verbatim output; the rebuild takes it out of the weights. Returns the servers."""
    now = now or utcnow()
    requested: list[int] = []
    candidates = session.scalars(
        select(Server)
        .where(Server.deleted_chars_since_root > 0, Server.rebuild_requested_at.is_(None))
        .order_by(Server.id)
        .execution_options(populate_existing=True)  # the counters are bumped by bulk UPDATEs
    ).all()
    for server in candidates:
        has_model = session.scalar(
            select(TrainedModel.id).where(
                TrainedModel.server_id == server.id, TrainedModel.active.is_(True)
            )
        )
        if has_model is None or rebuild_pending(session, server.id):
            continue
        deleted = server.deleted_chars_since_root
        kept = corpus_text.corpus_stats(session, server.id).chars
        first = as_utc(server.first_deletion_at)
        too_much = deleted > fraction * (kept + deleted)
        too_old = first is not None and first <= now - timedelta(days=days)
        if too_much or too_old:
            request_rebuild(session, server.id)
            requested.append(server.id)
    return requested


def rebuild_pending(session: Session, server_id: int) -> bool:
    """Whether the server is owed a rebuild or has one queued or training."""
    owed = session.scalar(select(Server.rebuild_requested_at).where(Server.id == server_id))
    if owed is not None:
        return True
    live = session.scalar(
        select(TrainingRun.id).where(
            TrainingRun.server_id == server_id,
            TrainingRun.rebuild.is_(True),
            TrainingRun.status.in_(LIVE_STATUSES),
        )
    )
    return live is not None


def queue_owed_rebuilds(sessions: sessionmaker[Session], minimum_chars: int) -> list[int]:
    """Queue the rebuilds `request_rebuild` left owed, for servers with no live run; returns
    the new run ids. A corpus now too small to train on cancels the debt: the server simply
    has no model until it grows again."""
    queued: list[int] = []
    with sessions() as session, session.begin():
        owed = session.scalars(
            select(Server).where(Server.rebuild_requested_at.is_not(None)).order_by(Server.id)
        ).all()
        for server in owed:
            busy = session.scalar(
                select(TrainingRun.id).where(
                    TrainingRun.server_id == server.id, TrainingRun.status.in_(LIVE_STATUSES)
                )
            )
            if busy is not None:
                continue
            server.rebuild_requested_at = None
            if corpus_text.corpus_stats(session, server.id).chars < minimum_chars:
                continue
            row = TrainingRun(
                server_id=server.id,
                trigger=RunTrigger.SCHEDULE,
                mode=RunMode.SCRATCH,
                arch="",
                status=RunStatus.QUEUED,
                rebuild=True,
                priority=REBUILD_PRIORITY,
            )
            session.add(row)
            session.flush()
            queued.append(row.id)
    return queued
