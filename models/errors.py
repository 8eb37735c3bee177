"""Errors from the model core whose message is meant for a person (CLI, bot, console)."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every models/ error with a user-readable message."""


class CheckpointError(ModelError):
    """A checkpoint file's contents are unusable: truncated, corrupt, foreign, from an unknown
    format, wrong shapes, NaN weights. Retrying cannot help."""


class CheckpointUnavailable(ModelError):
    """A checkpoint could not be read just now (missing, permission denied, too many open
    files, out of memory, an I/O error): nothing says its contents are bad, so it is retried,
    never set aside."""


class CorpusTooSmallError(ModelError):
    """The text is too short to train on (smaller than one training chunk plus validation)."""


class InvalidSettingError(ModelError):
    """A training or sampling setting is out of range."""


class CorpusError(ModelError):
    """A text file is missing, unreadable, not UTF-8 or empty."""


class TrainingCancelled(ModelError):
    """Training was cancelled before any checkpoint could be evaluated."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception means an allocation failed: Python's MemoryError, CUDA's, or the
    RuntimeError PyTorch raises for a failed CPU allocation ("DefaultCPUAllocator: not
    enough memory", "... out of memory")."""
    if isinstance(error, MemoryError):
        return True
    import torch  # lazily: the bot imports these error classes long before it needs torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text
    )
