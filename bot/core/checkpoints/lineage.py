"""Model lineage: what each trained model may have learned, and retiring the ones that
learned what a user asked Parrot to forget.

Every model records its parent (the model it was fine-tuned from; None for a root run),
its root ("scratch" today) and the corpus snapshot its run read. `model_authors` holds the
union, over the model and all its ancestors, of the authors whose text was read: a
fine-tune inherits its parent's list, so a forgotten user is found in every descendant
even after the ancestors' rows were pruned.

A user-level privacy request (`/privacy forget`, an opt-out) retires every model whose
lineage read that user, in that server or everywhere: rows and files, kept ones included.
The server then answers from its newest model that never read them, if it has one.
Synchronous, in the caller's session and transaction (files are deleted after commit by
`delete_retired_files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.core.checkpoints.files import checkpoint_of, sidecar_paths, unlink_quietly
from bot.core.checkpoints.registry import newest_usable_model
from bot.core.storage.corpus_text import CorpusSnapshot
from bot.core.storage.sql import IN_CLAUSE_CHUNK, chunks
from bot.core.storage.tables import ModelAuthor, TrainedModel

ROOT_SCRATCH = "scratch"


@dataclass
class RetiredModels:
    """What `retire_models_that_saw` removed, for the caller to finish after commit."""

    models: int = 0
    files: list[Path] = field(default_factory=list)
    # server id -> the model now active instead (None: the server has no model left)
    replacements: dict[int, int | None] = field(default_factory=dict)

    @property
    def servers(self) -> list[int]:
        return sorted(self.replacements)


def record_lineage(
    session: Session,
    model: TrainedModel,
    *,
    parent_id: int | None,
    snapshot: CorpusSnapshot | None,
    root: str = ROOT_SCRATCH,
) -> None:
    """Store a new model's lineage: parent, root (a root run's: "scratch" or "base"; a
    fine-tune inherits its parent's), snapshot, and the authors it inherits from its parent
    plus those of its own snapshot."""
    model.parent_id = parent_id
    model.root = root
    authors: set[int] = set()
    if parent_id is not None:
        parent = session.get(TrainedModel, parent_id)
        if parent is not None:
            model.root = parent.root
        authors.update(
            session.scalars(select(ModelAuthor.author_id).where(ModelAuthor.model_id == parent_id))
        )
    if snapshot is not None:
        model.corpus_through_message_id = snapshot.through_message_id
        model.corpus_through_document_id = snapshot.through_document_id
        model.corpus_snapshot_at = snapshot.taken_at
        authors.update(snapshot.author_ids)
    for chunk in chunks(sorted(authors), IN_CLAUSE_CHUNK):
        session.add_all(ModelAuthor(model_id=model.id, author_id=author) for author in chunk)
    session.flush()


def authors_of(session: Session, model_id: int) -> set[int]:
    """Every author whose text the model's lineage read."""
    return set(
        session.scalars(select(ModelAuthor.author_id).where(ModelAuthor.model_id == model_id))
    )


def servers_with_models_that_saw(session: Session, user_id: int, server_id: int | None) -> set[int]:
    """The servers (one, or all: None) with a model whose lineage read `user_id`."""
    query = (
        select(TrainedModel.server_id)
        .join(ModelAuthor, ModelAuthor.model_id == TrainedModel.id)
        .where(ModelAuthor.author_id == user_id)
        .distinct()
    )
    if server_id is not None:
        query = query.where(TrainedModel.server_id == server_id)
    return {int(found) for found in session.scalars(query)}


def retire_models_that_saw(session: Session, user_id: int, server_id: int | None) -> RetiredModels:
    """Delete every model (in one server, or all: None) whose lineage read `user_id`.

    Where the active model goes, the newest remaining model of that server becomes active:
    its lineage never read the user, since a lineage only grows.
    """
    query = (
        select(TrainedModel)
        .join(ModelAuthor, ModelAuthor.model_id == TrainedModel.id)
        .where(ModelAuthor.author_id == user_id)
    )
    if server_id is not None:
        query = query.where(TrainedModel.server_id == server_id)
    return retire(session, list(session.scalars(query).all()))


def retire_server_models(session: Session, server_id: int) -> RetiredModels:
    """Delete every model of a server (`/corpus clear`)."""
    rows = session.scalars(select(TrainedModel).where(TrainedModel.server_id == server_id)).all()
    retired = retire(session, list(rows))
    retired.replacements.setdefault(server_id, None)
    return retired


def retire(session: Session, rows: list[TrainedModel]) -> RetiredModels:
    retired = RetiredModels()
    lost_active = {row.server_id for row in rows if row.active}
    for row in rows:
        checkpoint = checkpoint_of(row.checkpoint_path)
        retired.files.extend([Path(row.checkpoint_path), *sidecar_paths(checkpoint)])
        retired.replacements.setdefault(row.server_id, None)
    ids = [row.id for row in rows]
    retired.models = len(ids)
    for chunk in chunks(ids, IN_CLAUSE_CHUNK):
        session.execute(delete(ModelAuthor).where(ModelAuthor.model_id.in_(chunk)))
        session.execute(
            delete(TrainedModel)
            .where(TrainedModel.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    for server_id in retired.servers:
        retired.replacements[server_id] = (
            _activate_newest(session, server_id)
            if server_id in lost_active
            else _active(session, server_id)
        )
    session.expire_all()
    return retired


def delete_retired_files(retired: RetiredModels) -> None:
    """After commit: delete the retired models' checkpoints and their sidecar files."""
    for path in retired.files:
        unlink_quietly(path)


def _active(session: Session, server_id: int) -> int | None:
    return session.scalar(
        select(TrainedModel.id).where(
            TrainedModel.server_id == server_id, TrainedModel.active.is_(True)
        )
    )


def _activate_newest(session: Session, server_id: int) -> int | None:
    newest = newest_usable_model(session, server_id)
    if newest is not None:
        session.execute(update(TrainedModel).where(TrainedModel.id == newest).values(active=True))
    return newest
