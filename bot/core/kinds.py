"""The small vocabularies of Parrot, each defined once: run states, triggers, modes and the
architectures a run may ask for. Storage, training, the services and every front end import
them from here. (The bounds of command arguments live beside their validation, in
`bot.core.inputs`.)

The network architectures themselves are the model's (`models.charrnn.Arch`); what a run
may ask for adds "auto" (train each gated cell, keep the better).
"""

from __future__ import annotations

import enum
from typing import Literal, get_args

from models.archs import GATED_ARCHS, Arch, GatedArch


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A run in one of these states is over and never changes again.
FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# A server has at most one run in one of these states at a time.
LIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    ADMIN = "admin"
    CLI = "cli"


class RunMode(enum.StrEnum):
    FINE_TUNE = "fine-tune"
    SCRATCH = "scratch"


# The same modes as the `Literal` that command signatures (discord.py, argparse) need.
TrainMode = Literal["fine-tune", "scratch"]
TRAIN_MODES: tuple[TrainMode, ...] = get_args(TrainMode)
assert set(TRAIN_MODES) == {mode.value for mode in RunMode}

AUTO_ARCH = "auto"
# What a run may ask for: any architecture, or "auto".
RunArch = Literal[Arch, "auto"]
RUN_ARCHS: tuple[RunArch, ...] = get_args(RunArch)
# What `/train` offers: the gated cells, or "auto".
TrainArch = Literal[GatedArch, "auto"]
TRAIN_ARCHS: tuple[TrainArch, ...] = get_args(TrainArch)
# What an "auto" run trains, one after the other.
AUTO_CANDIDATES: tuple[Arch, ...] = GATED_ARCHS

__all__ = [
    "AUTO_ARCH",
    "AUTO_CANDIDATES",
    "FINAL_STATUSES",
    "LIVE_STATUSES",
    "RUN_ARCHS",
    "TRAIN_ARCHS",
    "TRAIN_MODES",
    "RunArch",
    "RunMode",
    "RunStatus",
    "RunTrigger",
    "TrainArch",
    "TrainMode",
]
