"""The model registry: each server's checkpoints on disk, which one is active, and pruning.

Layout: `<data_dir>/checkpoints/<server_id>/<run_id>-<arch>.ckpt`, each with an optional
verbatim index beside it (`<checkpoint>.verbatim`, see `bot.core.generation.verbatim`). Every file is
written atomically by the training worker (temp file + rename), and a `trained_models` row
is added only after the file is complete, so a crash leaves at worst an orphan file (removed
by `prune`), never a row that points at half a checkpoint.

Rules:
- Activation (`should_activate`): a new model replaces the active one only if its validation
  loss is no worse than the active model's *on the same validation text*; a server without
  a model takes any model. The worker measures both losses; the registry applies the rule.
- At most one model per server is active (`set_active` deactivates the others in the same
  transaction).
- A checkpoint that fails to load is skipped with a logged error: `active_checkpoint` moves
  its file aside (`<name>.corrupt`, kept for inspection), marks its row inactive and
  pointing there (kept, so a model id never names two files), activates the newest usable
  model and tries again, so callers get the previous good model. `prune` removes both.
- `prune` keeps the newest `keep` models of a server plus the active one and deletes the
  rest (rows and files), and removes orphan files of runs that are no longer in flight.

Listeners: `add_activation_listener(callback(server_id, model_id))` is how the sampler learns
about a new model (hot swap). Callbacks run synchronously in the thread that committed the
activation (often a worker thread), after the commit; they must be quick and thread-safe.
An exception in one is logged and does not affect the others.

All methods are synchronous and do their own database transactions (the bot calls them
through `asyncio.to_thread`), except `add_model`, which joins the caller's session so a run's
status and its model row are committed together; the caller then calls `notify_activated`.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.files import (
    CORRUPT_SUFFIX,
    checkpoint_filename,
    checkpoint_of,
    is_set_aside,
    move_aside,
    remove_orphans,
    sidecar_paths,
    unlink_quietly,
)
from bot.core.config import ParrotConfig
from bot.core.kinds import RunStatus
from bot.core.logs import get_logger
from bot.core.storage.tables import TrainedModel, TrainingRun
from models.checkpoint import Checkpoint, load_checkpoint
from models.errors import CheckpointError
from models.units import LN2

log = get_logger(__name__)

ActivationListener = Callable[[int, int], None]  # (server_id, model_id)


@dataclass(frozen=True)
class ModelRecord:
    """What the bot shows and the sampler loads for a server's model (one `trained_models` row)."""

    id: int
    server_id: int
    run_id: int | None
    path: Path
    arch: str
    param_count: int
    chars_trained: int
    val_loss_nats: float | None
    val_bits_per_char: float | None
    created_at: datetime
    active: bool
    # [[step, train_loss, val_loss_or_null], ...] in nats/char, from the run that made it.
    loss_history: list[list[Any]]
    # Trained here on the server's corpus (a lineage snapshot is recorded), so it is only
    # served with its verbatim index; an installed checkpoint never read this corpus.
    requires_guard: bool = False


@dataclass(frozen=True)
class LoadedModel:
    """An active model together with its checkpoint, loaded and validated."""

    model: ModelRecord
    checkpoint: Checkpoint


def should_activate(candidate_val_nats: float, incumbent_val_nats: float | None) -> bool:
    """The activation rule: no worse than the incumbent on the same text (or no incumbent).

    A NaN candidate never wins; a NaN incumbent (its evaluation failed) always loses.
    """
    if math.isnan(candidate_val_nats):
        return False
    if incumbent_val_nats is None or math.isnan(incumbent_val_nats):
        return True
    return candidate_val_nats <= incumbent_val_nats


class ModelRegistry:
    def __init__(
        self,
        checkpoints_dir: Path,
        session_factory: sessionmaker[Session],
        *,
        keep_checkpoints: int = 3,
    ) -> None:
        self.checkpoints_dir = Path(checkpoints_dir)
        self.keep_checkpoints = max(1, keep_checkpoints)
        self._sessions = session_factory
        self._listeners: list[ActivationListener] = []
        self._listeners_lock = threading.Lock()
        # Serialises fall-back-on-corruption so two threads do not both move the same file.
        self._repair_lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: ParrotConfig, session_factory: sessionmaker[Session]
    ) -> ModelRegistry:
        return cls(
            config.storage.checkpoints_path,
            session_factory,
            keep_checkpoints=config.training.keep_checkpoints,
        )

    # -- paths ---------------------------------------------------------------------------

    def server_dir(self, server_id: int) -> Path:
        return self.checkpoints_dir / str(int(server_id))

    def checkpoint_path(self, server_id: int, run_id: int, arch: str) -> Path:
        return self.server_dir(server_id) / checkpoint_filename(run_id, arch)

    # -- listeners -----------------------------------------------------------------------

    def add_activation_listener(self, callback: ActivationListener) -> None:
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_activation_listener(self, callback: ActivationListener) -> None:
        with self._listeners_lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def notify_activated(self, server_id: int, model_id: int) -> None:
        """Tell every listener that `model_id` is now the server's active model."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(server_id, model_id)
            except Exception:
                log.exception("activation listener %r failed for server %s", callback, server_id)

    # -- queries -------------------------------------------------------------------------

    def active_model(self, server_id: int) -> ModelRecord | None:
        """The server's active model (database only; the file is not opened)."""
        with self._sessions() as session:
            row = session.scalars(
                select(TrainedModel)
                .where(TrainedModel.server_id == server_id, TrainedModel.active.is_(True))
                .order_by(TrainedModel.id.desc())
                .limit(1)
            ).first()
            return describe_model(session, row) if row is not None else None

    def get_model(self, model_id: int) -> ModelRecord | None:
        with self._sessions() as session:
            row = session.get(TrainedModel, model_id)
            return describe_model(session, row) if row is not None else None

    def list_models(self, server_id: int) -> list[ModelRecord]:
        """Every model of the server, newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(TrainedModel)
                .where(TrainedModel.server_id == server_id)
                .order_by(TrainedModel.id.desc())
            ).all()
            return [describe_model(session, row) for row in rows]

    def active_checkpoint(self, server_id: int) -> LoadedModel | None:
        """Load the active model; a corrupt one is skipped (logged) and the previous one used."""
        while True:
            model = self.active_model(server_id)
            if model is None:
                return None
            try:
                return LoadedModel(model=model, checkpoint=load_checkpoint(model.path))
            except CheckpointError as error:
                log.error(
                    "server %s: model %s is unusable and is skipped: %s", server_id, model.id, error
                )
                self.discard_unloadable(model.id)

    def discard_unloadable(self, model_id: int) -> int | None:
        """Set aside a model whose file cannot be loaded; returns the model activated instead.

        The file is renamed to `<name>.corrupt` (kept for inspection) and the row, kept as a
        record (ids are never reused for another file), points there and is inactive; `prune`
        removes both later. If it was active, the newest usable model becomes active.
        """
        with self._repair_lock:
            with self._sessions() as session, session.begin():
                row = session.get(TrainedModel, model_id)
                if row is None or is_set_aside(row.checkpoint_path):
                    return None
                server_id, was_active = row.server_id, row.active
                path = Path(row.checkpoint_path)
                row.checkpoint_path = str(path.with_name(path.name + CORRUPT_SUFFIX))
                row.active = False
                session.flush()
                replacement: int | None = None
                if was_active:
                    replacement = newest_usable_model(session, server_id)
                    if replacement is not None:
                        self._set_active_in(session, server_id, replacement)
            move_aside(path)
        if replacement is not None:
            log.warning("server %s: falling back to model %s", server_id, replacement)
            self.notify_activated(server_id, replacement)
        return replacement

    # -- changes -------------------------------------------------------------------------

    def add_model(
        self,
        session: Session,
        *,
        server_id: int,
        run_id: int | None,
        path: Path,
        arch: str,
        param_count: int,
        chars_trained: int,
        val_loss_nats: float | None,
        activate: bool,
    ) -> TrainedModel:
        """Add a row for a complete checkpoint file, in the caller's transaction.

        After the caller commits, it must call `notify_activated(server_id, row.id)` when
        `activate` was true.
        """
        row = TrainedModel(
            server_id=server_id,
            run_id=run_id,
            checkpoint_path=str(path),
            arch=arch,
            param_count=param_count,
            chars_trained=chars_trained,
            val_loss_nats=val_loss_nats,
            val_bits_per_char=None if val_loss_nats is None else val_loss_nats / LN2,
            active=False,
        )
        session.add(row)
        session.flush()
        if activate:
            self._set_active_in(session, server_id, row.id)
        return row

    def set_active(self, model_id: int) -> None:
        """Make a model the server's active one (e.g. an admin rolling back), then notify."""
        with self._sessions() as session, session.begin():
            row = session.get(TrainedModel, model_id)
            if row is None:
                raise LookupError(f"no model {model_id}")
            server_id = row.server_id
            self._set_active_in(session, server_id, model_id)
        self.notify_activated(server_id, model_id)

    def prune(self, server_id: int) -> list[Path]:
        """Delete all but the newest `keep_checkpoints` usable models (never the active one,
        never one set aside as corrupt).

        Also removes files in the server's directory that no row refers to, except those of
        runs still queued or running (a worker may be writing them). Returns deleted paths.
        """
        removed: list[Path] = []
        with self._sessions() as session, session.begin():
            rows = session.scalars(
                select(TrainedModel)
                .where(TrainedModel.server_id == server_id)
                .order_by(TrainedModel.id.desc())
            ).all()
            # A set-aside file is never deleted automatically: it is evidence, and "corrupt"
            # may have been a misdiagnosis. An admin removes it.
            usable = [row for row in rows if not is_set_aside(row.checkpoint_path)]
            doomed = [row for row in usable[self.keep_checkpoints :] if not row.active]
            for row in doomed:
                session.delete(row)
            kept_paths = {
                checkpoint_of(row.checkpoint_path).name for row in rows if row not in doomed
            }
            live_runs = set(
                session.scalars(
                    select(TrainingRun.id).where(
                        TrainingRun.server_id == server_id,
                        TrainingRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)),
                    )
                ).all()
            )
        for row in doomed:
            for path in [
                *sidecar_paths(checkpoint_of(row.checkpoint_path)),
                Path(row.checkpoint_path),
            ]:
                if unlink_quietly(path):
                    removed.append(path)
        removed.extend(remove_orphans(self.server_dir(server_id), kept_paths, live_runs))
        return removed

    def delete_server(self, server_id: int) -> None:
        """Remove the server's checkpoint directory (rows go with `corpus.purge_server`)."""
        shutil.rmtree(self.server_dir(server_id), ignore_errors=True)

    # -- internals -----------------------------------------------------------------------

    def _set_active_in(self, session: Session, server_id: int, model_id: int) -> None:
        session.execute(
            update(TrainedModel)
            .where(TrainedModel.server_id == server_id, TrainedModel.id != model_id)
            .values(active=False)
        )
        session.execute(update(TrainedModel).where(TrainedModel.id == model_id).values(active=True))


def newest_usable_model(session: Session, server_id: int) -> int | None:
    """The server's newest model that was not set aside: the one to fall back to."""
    return session.scalar(
        select(TrainedModel.id)
        .where(
            TrainedModel.server_id == server_id,
            TrainedModel.checkpoint_path.not_like(f"%{CORRUPT_SUFFIX}"),
        )
        .order_by(TrainedModel.id.desc())
        .limit(1)
    )


def describe_model(session: Session, row: TrainedModel) -> ModelRecord:
    """A row as a `ModelRecord`, with the loss history of the run that made it."""
    history: list[list[Any]] = []
    if row.run_id is not None:
        history = list(
            session.scalar(select(TrainingRun.loss_history).where(TrainingRun.id == row.run_id))
            or []
        )
    return ModelRecord(
        id=row.id,
        server_id=row.server_id,
        run_id=row.run_id,
        path=Path(row.checkpoint_path),
        arch=row.arch,
        param_count=row.param_count,
        chars_trained=row.chars_trained,
        val_loss_nats=row.val_loss_nats,
        val_bits_per_char=row.val_bits_per_char,
        created_at=row.created_at,
        active=row.active,
        loss_history=history,
        requires_guard=row.corpus_snapshot_at is not None,
    )
