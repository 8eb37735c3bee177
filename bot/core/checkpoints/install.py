"""Installing a checkpoint made elsewhere (`parrot train`, the console's bundled model) as a
server's active model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRecord, ModelRegistry
from bot.core.storage import corpus
from bot.core.storage.db import session_scope


def install_checkpoint(
    registry: ModelRegistry, sessions: sessionmaker[Session], server_id: int, source: Path
) -> ModelRecord:
    """Copy `source` in (atomically) and activate it; blocking, run it in a thread.

    The file is validated by loading it; the copy is named like a run's checkpoint (run 0)
    so the registry's pruning keeps it.
    """
    from models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(source)
    arch = checkpoint.config.arch
    target = registry.checkpoint_path(server_id, 0, arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, partial)
    partial.replace(target)
    best = checkpoint.stats.best_val_loss
    with session_scope(sessions) as session:
        corpus.ensure_server(session, server_id)
        row = registry.add_model(
            session,
            server_id=server_id,
            run_id=None,
            path=target,
            arch=arch,
            param_count=checkpoint.param_count,
            chars_trained=checkpoint.stats.chars_seen,
            val_loss_nats=None if math.isnan(best) else best,
            activate=True,
        )
        model_id = row.id
    registry.notify_activated(server_id, model_id)
    model = registry.get_model(model_id)
    assert model is not None
    return model
