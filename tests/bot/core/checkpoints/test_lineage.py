"""Model lineage on real databases: what a model inherits, and retiring the models that read
a forgotten user, in one server or everywhere, with the right model activated instead."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.checkpoints.lineage import (
    authors_of,
    delete_retired_files,
    record_lineage,
    retire_models_that_saw,
    retire_server_models,
)
from bot.core.generation.verbatim import index_path_for
from bot.core.storage import corpus, deletions
from bot.core.storage.corpus_text import corpus_snapshot
from bot.core.storage.tables import TrainedModel
from tests.helpers.corpus_builders import ALICE, BOB, OTHER_SERVER, SERVER, msg


def add_model(
    session: Session, tmp_path: Path, server_id: int, parent: TrainedModel | None, active: bool
) -> TrainedModel:
    newest = session.scalar(select(TrainedModel.id).order_by(TrainedModel.id.desc()).limit(1))
    path = tmp_path / f"{server_id}-{(newest or 0) + 1}.ckpt"
    path.write_bytes(b"weights")
    index_path_for(path).write_bytes(b"index")
    if active:
        for row in session.scalars(select(TrainedModel).where(TrainedModel.server_id == server_id)):
            row.active = False
    row = TrainedModel(
        server_id=server_id,
        checkpoint_path=str(path),
        arch="gru",
        param_count=1,
        chars_trained=1,
        active=active,
    )
    session.add(row)
    session.flush()
    record_lineage(
        session,
        row,
        parent_id=parent.id if parent else None,
        snapshot=corpus_snapshot(session, server_id),
    )
    return row


def test_a_fine_tune_inherits_its_parents_authors(session: Session, tmp_path: Path) -> None:
    corpus.add_messages(session, SERVER, [msg(1, author=ALICE)])
    root = add_model(session, tmp_path, SERVER, None, active=True)
    corpus.add_messages(session, SERVER, [msg(2, author=BOB)])
    deletions.delete_messages(session, [1])  # ALICE's text is gone from the corpus...
    child = add_model(session, tmp_path, SERVER, root, active=True)
    assert authors_of(session, child.id) == {ALICE, BOB}  # ...but not from the lineage
    assert (child.parent_id, child.corpus_through_message_id) == (root.id, 2)


def test_forgetting_everywhere_retires_models_in_every_server(
    session: Session, tmp_path: Path
) -> None:
    corpus.add_messages(session, SERVER, [msg(1, author=BOB)])
    clean = add_model(session, tmp_path, SERVER, None, active=True)  # never read ALICE
    corpus.add_messages(session, SERVER, [msg(2, author=ALICE)])
    tainted = add_model(session, tmp_path, SERVER, clean, active=True)
    corpus.add_messages(session, OTHER_SERVER, [msg(3, author=ALICE)])
    other = add_model(session, tmp_path, OTHER_SERVER, None, active=True)

    gone = [Path(row.checkpoint_path) for row in (tainted, other)]
    clean_id, clean_path = clean.id, Path(clean.checkpoint_path)
    retired = retire_models_that_saw(session, ALICE, None)
    assert retired.models == 2
    assert retired.replacements == {SERVER: clean_id, OTHER_SERVER: None}
    delete_retired_files(retired)
    for path in gone:
        assert not path.exists() and not index_path_for(path).exists()
    assert clean_path.exists()
    active = session.scalars(select(TrainedModel.id).where(TrainedModel.active.is_(True))).all()
    assert active == [clean_id]


def test_forgetting_in_one_server_keeps_the_others_models(session: Session, tmp_path: Path) -> None:
    corpus.add_messages(session, SERVER, [msg(1, author=ALICE)])
    corpus.add_messages(session, OTHER_SERVER, [msg(2, author=ALICE)])
    here = add_model(session, tmp_path, SERVER, None, active=True).id
    there = add_model(session, tmp_path, OTHER_SERVER, None, active=True).id
    retired = retire_models_that_saw(session, ALICE, SERVER)
    assert retired.replacements == {SERVER: None}
    assert session.get(TrainedModel, here) is None
    assert session.get(TrainedModel, there) is not None
    cleared = retire_server_models(session, OTHER_SERVER)
    assert cleared.models == 1 and cleared.replacements == {OTHER_SERVER: None}
