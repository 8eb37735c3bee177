"""A training run's progress: the one shape it has from the worker's report, through the run
row (stored as JSON), to what `/train`, the console and `parrot train-server` render.

Kept free of SQLAlchemy and torch: the worker process sends it over its pipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunProgress:
    """The latest progress of a running run (losses in nats/char)."""

    step: int
    total_steps: int
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    chars_per_sec: float
    eta_seconds: float | None
    elapsed_seconds: float
    arch: str = ""
    phase: int = 1
    phases: int = 1

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunProgress | None:
        if not data or "step" not in data:
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**known)
        except TypeError:
            return None
