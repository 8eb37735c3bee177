"""The vocabularies are derived from one definition each."""

from __future__ import annotations

from bot.core.kinds import (
    AUTO_ARCH,
    AUTO_CANDIDATES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    RUN_ARCHS,
    TRAIN_ARCHS,
    TRAIN_MODES,
    RunMode,
    RunStatus,
)
from models.archs import ARCHS, GATED_ARCHS


def test_run_architectures_are_the_model_ones_plus_auto() -> None:
    assert (*ARCHS, AUTO_ARCH) == RUN_ARCHS
    assert (*GATED_ARCHS, AUTO_ARCH) == TRAIN_ARCHS
    assert AUTO_CANDIDATES == GATED_ARCHS == ("gru", "lstm")


def test_modes_and_statuses_cover_every_member_once() -> None:
    assert set(TRAIN_MODES) == {mode.value for mode in RunMode}
    assert FINAL_STATUSES.isdisjoint(LIVE_STATUSES)
    assert FINAL_STATUSES | set(LIVE_STATUSES) == set(RunStatus)
