"""Planning a training run: what the worker will train, from what, and for how long.

Mode and architecture: `scratch` trains a new model with the requested architecture (else
the server's `servers.arch`, else `[model] arch`) and the server's preferred size
(`servers.hidden_size/num_layers`, else `[model]`); `fine-tune` continues the active model
(its architecture wins; with no model yet it becomes `scratch`, and the result says so).
`arch="auto"` on a scratch run trains a GRU and an LSTM, each with half the time budget,
and keeps the one with the lower validation loss. Budgets: `training.max_minutes`
(scratch), `training.fine_tune_minutes` (fine-tune, capped by max_minutes),
`training.max_corpus_chars`.

Lineage: a fine-tune's parent is the active model, and its guard index will be the union
of the parent's and its own text. A rebuild (`RunInfo.rebuild`) always starts from the
root: today from scratch (a base model will be the other root).

Synchronous (database and checkpoint reads): call from a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.base_model import ROOT_BASE, base_checkpoint_path
from bot.core.checkpoints.lineage import ROOT_SCRATCH
from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig
from bot.core.errors import CorpusTooSmall
from bot.core.generation.verbatim import index_path_for
from bot.core.kinds import AUTO_ARCH, AUTO_CANDIDATES, RUN_ARCHS, RunMode
from bot.core.storage import corpus_text
from bot.core.storage.tables import Server, TrainingRun
from bot.core.training.queue import RunInfo
from bot.core.training.worker import WorkerJob
from models.checkpoint import load_checkpoint

# Beyond the training budget: reading the corpus, importing torch, evaluation, saving.
WATCHDOG_GRACE_SECONDS = 300.0
# TrainConfig fields the planner sets itself; overrides may not replace them piecemeal.
BUDGET_KEYS = ("max_minutes", "max_steps")


@dataclass
class RunPlan:
    job: WorkerJob
    mode: RunMode  # may differ from the requested one (fine-tune without a model)
    incumbent_id: int | None
    deadline_seconds: float
    # Lineage: the model this run fine-tunes (None: a root run) and the server's privacy
    # epoch when it was planned; a later privacy request discards the run.
    parent_id: int | None = None
    privacy_epoch: int = 0
    rebuild: bool = False
    extra_notes: tuple[str, ...] = ()
    root: str = ROOT_SCRATCH  # a root run's lineage root: "scratch", or "base"

    def notes(self, info: RunInfo) -> list[str]:
        """What the result should say about how the plan differs from the request."""
        notes = list(self.extra_notes)
        start = "Parrot's base model" if self.root == ROOT_BASE else "scratch"
        if self.rebuild:
            notes.append(f"rebuilt from {start} without deleted or forgotten text")
        elif self.parent_id is None and info.mode == RunMode.FINE_TUNE:
            notes.append(f"the server had no model yet, so this run trained one from {start}")
        elif self.root == ROOT_BASE:
            notes.append("fine-tuned from Parrot's base model")
        return notes


def base_settings(config: ParrotConfig) -> dict[str, Any]:
    """TrainConfig fields from the config's `[model]` and `[training]`."""
    model = config.model
    return {
        "embed_dim": model.embed_dim,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "dropout": model.dropout,
        "seed": config.training.seed,
        "device": config.training.device,
    }


def minimum_chars(config: ParrotConfig, overrides: Mapping[str, Any]) -> int:
    """The fewest corpus characters a run with these settings can train on."""
    from models.config import TrainConfig, minimum_corpus_chars

    settings = {**base_settings(config), **overrides}
    for key in BUDGET_KEYS:
        settings.pop(key, None)
    return minimum_corpus_chars(TrainConfig(**settings))


def plan_run(
    config: ParrotConfig,
    sessions: sessionmaker[Session],
    registry: ModelRegistry,
    overrides: Mapping[str, Any],
    info: RunInfo,
) -> RunPlan:
    """The worker's job for a claimed run; records the corpus size at start on the row."""
    training = config.training
    with sessions() as session, session.begin():
        server = session.get(Server, info.server_id)
        if server is None:
            raise CorpusTooSmall("This server's data was deleted.")
        chars = corpus_text.corpus_stats(session, info.server_id).chars
        row = session.get(TrainingRun, info.id)
        if row is not None:
            row.corpus_chars_at_start = chars
            row.privacy_epoch = server.privacy_epoch
        privacy_epoch = server.privacy_epoch
        preferred = {
            "arch": server.arch,
            "hidden_size": server.hidden_size,
            "num_layers": server.num_layers,
        }
    # Loads (and so validates) the active checkpoint; a corrupt one is set aside here
    # and the previous model becomes the incumbent.
    incumbent = registry.active_checkpoint(info.server_id)
    mode = RunMode.SCRATCH if info.rebuild else info.mode
    if mode == RunMode.FINE_TUNE and incumbent is None:
        mode = RunMode.SCRATCH
    span = config.generation.max_verbatim_chars or None
    parent_index: str | None = None
    notes: tuple[str, ...] = ()
    if mode == RunMode.FINE_TUNE and incumbent is not None and span is not None:
        # The guard's union needs the parent's index; without it this run starts a new root.
        index = index_path_for(incumbent.model.path)
        if index.is_file():
            parent_index = str(index)
        else:
            mode = RunMode.SCRATCH
            notes = ("the active model's copy-guard index is missing, so this run started over",)
    settings = base_settings(config)
    for key in ("hidden_size", "num_layers"):
        if preferred[key]:
            settings[key] = preferred[key]
    max_steps = overrides.get("max_steps")
    settings.update({k: v for k, v in overrides.items() if k not in BUDGET_KEYS})
    # A root run (no model yet, a rebuild, or a scratch request) starts from the base model
    # when one is configured: a general prior is far better than nothing on a small corpus.
    base = base_checkpoint_path(config.model.base) if mode == RunMode.SCRATCH else None
    base_arch = load_checkpoint(base).config.arch if base is not None else None
    if mode == RunMode.FINE_TUNE:
        assert incumbent is not None
        archs: tuple[str, ...] = (incumbent.model.arch,)
        minutes = min(training.fine_tune_minutes, training.max_minutes)
    elif base_arch is not None:
        archs = (base_arch,)  # the base's shape wins: its weights are the start
        minutes = min(training.fine_tune_minutes, training.max_minutes)
    else:
        arch = info.arch if info.arch in RUN_ARCHS else ""
        arch = arch or preferred["arch"] or config.model.arch
        archs = AUTO_CANDIDATES if arch == AUTO_ARCH else (arch,)
        minutes = training.max_minutes
    minutes = float(overrides.get("max_minutes", minutes) or minutes)
    job = WorkerJob(
        run_id=info.id,
        server_id=info.server_id,
        database_url=config.storage.resolved_database_url,
        mode=mode.value,
        archs=archs,
        train_settings=settings,
        minutes=minutes,
        max_steps=max_steps,
        max_corpus_chars=training.max_corpus_chars,
        checkpoint_dir=str(registry.server_dir(info.server_id)),
        # A rebuild activates whatever its loss, so the incumbent is not even measured.
        incumbent_path=(
            str(incumbent.model.path) if incumbent is not None and not info.rebuild else None
        ),
        verbatim_span=span,
        parent_index_path=parent_index,
        busy_timeout_ms=config.storage.sqlite_busy_timeout_ms,
        init_path=str(base) if base is not None else None,
    )
    return RunPlan(
        job=job,
        mode=mode,
        incumbent_id=incumbent.model.id if incumbent is not None else None,
        deadline_seconds=minutes * 60.0 + WATCHDOG_GRACE_SECONDS,
        parent_id=incumbent.model.id if mode == RunMode.FINE_TUNE and incumbent else None,
        privacy_epoch=privacy_epoch,
        rebuild=info.rebuild,
        extra_notes=notes,
        root=ROOT_BASE if base is not None else ROOT_SCRATCH,
    )
