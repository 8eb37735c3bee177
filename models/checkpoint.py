"""Self-describing checkpoints: one file holds config, vocabulary, weights and training stats.

The file is a `torch.save` of plain containers (dict/list/str/int/float and tensors), so it
loads with `torch.load(weights_only=True)`: no pickled code ever runs. Writes are atomic
(temp file in the same directory, fsync, `os.replace`), so a crash never leaves half a
checkpoint where a good one was. Bad contents become a `CheckpointError`, and a file that
cannot be read right now (I/O, permissions, memory) a `CheckpointUnavailable`, each with a
message naming the file, never a traceback from deep inside torch: the bot sets aside only
the former.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.charrnn import CharRNN, CharRNNConfig
from models.errors import CheckpointError, CheckpointUnavailable, is_out_of_memory
from models.vocab import Vocab

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointUnavailable",
    "TrainingStats",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT_NAME = "parrot-charrnn"
FORMAT_VERSION = 1


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class TrainingStats:
    chars_seen: int = 0  # training characters consumed as targets, over all runs
    steps: int = 0  # optimizer steps, over all runs
    train_seconds: float = 0.0
    best_val_loss: float = float("nan")  # nats/char on the validation split
    # (cumulative step, train loss, val loss), nats/char
    val_loss_history: list[tuple[int, float, float]] = field(default_factory=list)
    created_at: str = field(default_factory=_now_iso)
    device: str = "cpu"
    precision: str = "fp32"
    corpus_chars: int = 0  # size of the text the last run trained on (train + val)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["val_loss_history"] = [list(row) for row in self.val_loss_history]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        history = [(int(s), float(t), float(v)) for s, t, v in known.pop("val_loss_history", [])]
        return cls(**known, val_loss_history=history)


@dataclass
class Checkpoint:
    config: CharRNNConfig
    vocab: Vocab
    state_dict: dict[str, Tensor]
    stats: TrainingStats = field(default_factory=TrainingStats)

    @classmethod
    def from_model(cls, model: CharRNN, vocab: Vocab, stats: TrainingStats) -> Checkpoint:
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return cls(config=model.config, vocab=vocab, state_dict=weights, stats=stats)

    def build_model(self, device: torch.device | str = "cpu") -> CharRNN:
        """A float32 model on `device`, in eval mode."""
        model = CharRNN(self.config)
        try:
            model.load_state_dict({k: v.float() for k, v in self.state_dict.items()})
        except (RuntimeError, KeyError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint weights do not match its model config: {exc}"
            ) from None
        return model.to(device).eval()

    @property
    def param_count(self) -> int:
        return sum(t.numel() for t in self.state_dict.values())


def save_checkpoint(
    ckpt: Checkpoint, path: Path | str, *, dtype: torch.dtype | None = None
) -> None:
    """Write atomically. `dtype` (e.g. torch.bfloat16) stores float weights smaller."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
        for k, v in ckpt.state_dict.items()
    }
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": ckpt.config.to_dict(),
        "vocab": ckpt.vocab.to_list(),
        "vocab_max_size": ckpt.vocab.max_size,
        "state_dict": weights,
        "stats": ckpt.stats.to_dict(),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary readable file
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp_name).unlink()
        raise
    # Make the rename itself durable (best effort: not every platform can fsync a directory).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read and validate a checkpoint. `CheckpointError`: its contents are unusable;
    `CheckpointUnavailable`: it could not be read now (I/O, permissions, memory)."""
    path = Path(path)
    try:
        # Opened here, not by zipfile.is_zipfile, which answers False on any OSError and so
        # would call an unreadable file corrupt.
        with path.open("rb") as handle:
            is_archive = zipfile.is_zipfile(handle)
    except FileNotFoundError:
        raise CheckpointUnavailable(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a Parrot checkpoint") from None
    except OSError as exc:
        raise CheckpointUnavailable(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not is_archive:
        raise CheckpointError(
            f"{path} is not a Parrot checkpoint (not a PyTorch archive: truncated or another kind of file)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointUnavailable(f"cannot read checkpoint {path}: {exc}") from None
    except Exception as exc:  # torch, pickle and zipfile raise many unrelated types here
        if is_out_of_memory(exc):
            raise CheckpointUnavailable(f"out of memory loading {path}") from None
        raise CheckpointError(
            f"{path} is not a readable Parrot checkpoint (corrupt, or it holds objects other than "
            f"plain data and tensors: {type(exc).__name__})"
        ) from None
    try:
        return _from_payload(payload)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a valid Parrot checkpoint: {exc}") from None


def _from_payload(payload: object) -> Checkpoint:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError("not a Parrot checkpoint (foreign file)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    config = CharRNNConfig.from_dict(dict(payload["config"]))
    chars = payload["vocab"]
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise CheckpointError("the vocabulary is malformed")
    vocab = Vocab.from_list(chars, max_size=int(payload.get("vocab_max_size", len(chars))))
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"vocabulary has {len(vocab)} entries but the model expects {config.vocab_size}"
        )
    weights = payload["state_dict"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in weights.items()
    ):
        raise CheckpointError("the weights are malformed")
    with torch.device("meta"):  # shapes only, no memory
        expected = CharRNN(config).state_dict()
    if set(weights) != set(expected):
        raise CheckpointError(
            "the weights do not match the model config (missing or extra tensors)"
        )
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise CheckpointError(
                f"tensor {name} has shape {tuple(weights[name].shape)}, expected {tuple(tensor.shape)}"
            )
        if weights[name].is_floating_point() and not torch.isfinite(weights[name].float()).all():
            raise CheckpointError(f"tensor {name} contains NaN or infinite values")
    stats = TrainingStats.from_dict(dict(payload.get("stats", {})))
    return Checkpoint(config=config, vocab=vocab, state_dict=dict(weights), stats=stats)
