"""`TrainConfig`: every setting of one training run, as plain data, and the corpus sizes
those settings imply (the smallest text they train on, the validation split's length).

Importable without torch, so the command line and the bot's planner can build and check a
configuration before anything heavy is loaded. `models.train` turns one into a run;
`models.presets` holds the named ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from models.archs import ARCHS, Arch
from models.errors import InvalidSettingError
from models.vocab import DEFAULT_MAX_SIZE

# "auto": bf16 where the hardware runs it natively, else fp32 (see models.device).
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)


@dataclass(frozen=True)
class TrainConfig:
    # Model shape (ignored when fine-tuning: the init checkpoint's shape wins).
    arch: Arch = "gru"
    embed_dim: int = 64
    # 2x256 beat 2x512 on quality after 10 min on 2 CPU cores, and samples ~3x faster.
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    # Optimisation.
    seq_len: int = 64  # chunk length of truncated BPTT
    batch_size: int = 32  # parallel streams (small: more updates per minute on a small CPU)
    lr: float = 3e-3
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at the end of the budget
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # Data and budget.
    val_fraction: float = 0.1  # the last part of the text
    max_minutes: float | None = 10.0
    max_steps: int | None = None
    eval_interval: int = 100  # steps between validations (also at least every eval_seconds)
    eval_seconds: float = 60.0
    max_eval_chars: int = 131_072  # validation during training uses at most this much of the split
    patience: int = 6  # validations without improvement before stopping early
    seed: int = 1337
    max_vocab: int = DEFAULT_MAX_SIZE
    # Hardware.
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = "auto"
    num_threads: int | None = None  # CPU threads; None leaves torch's default

    def validate(self) -> None:
        """Raise `InvalidSettingError` (a message for a person) for the first bad setting."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InvalidSettingError(message)

        need(self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}")
        need(1 <= self.embed_dim <= 4096, "embed_dim must be between 1 and 4096")
        need(1 <= self.hidden_size <= 8192, "hidden size must be between 1 and 8192")
        need(1 <= self.num_layers <= 16, "layers must be between 1 and 16")
        need(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        need(2 <= self.seq_len <= 100_000, "seq_len must be between 2 and 100000")
        need(1 <= self.batch_size <= 65_536, "batch_size must be between 1 and 65536")
        need(0.0 < self.lr <= 1.0, "lr must be in (0, 1]")
        need(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(self.weight_decay >= 0.0, "weight_decay must be >= 0")
        need(self.grad_clip > 0.0, "grad_clip must be > 0")
        need(0.0 < self.val_fraction <= 0.5, "val_fraction must be in (0, 0.5]")
        need(
            self.max_minutes is None or 0.0 < self.max_minutes <= 7 * 24 * 60,
            "--minutes must be > 0 (and at most a week)",
        )
        need(self.max_steps is None or self.max_steps >= 1, "--steps must be >= 1")
        need(
            self.max_minutes is not None or self.max_steps is not None, "give a time or step budget"
        )
        need(self.eval_interval >= 1, "eval_interval must be >= 1")
        need(self.eval_seconds > 0, "eval_seconds must be > 0")
        need(self.max_eval_chars >= 2, "max_eval_chars must be >= 2")
        need(self.patience >= 1, "patience must be >= 1")
        need(2 <= self.max_vocab <= 1_114_112, "max_vocab must be between 2 and 1114112")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")
        need(self.num_threads is None or self.num_threads >= 1, "num_threads must be >= 1")


def minimum_corpus_chars(config: TrainConfig) -> int:
    """Smallest text `train` accepts: one chunk (seq_len + 1) for training plus 2 for validation."""
    train_min = config.seq_len + 1
    return math.ceil(max(train_min / (1.0 - config.val_fraction), train_min + 2))


def validation_chars(text_chars: int, val_fraction: float) -> int:
    """Length of the validation split of a `text_chars`-long text: its last `val_fraction`
    (at least 2 characters). Callers comparing models on the same text cut it with this."""
    return max(2, int(text_chars * val_fraction))
