"""Errors from the model core whose message is meant for a person (CLI, bot, console)."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every models/ error with a user-readable message."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, truncated, corrupt, foreign or from an unknown format."""


class CorpusTooSmallError(ModelError):
    """The text is too short to train on (smaller than one training chunk plus validation)."""


class InvalidSettingError(ModelError):
    """A training or sampling setting is out of range."""


class CorpusError(ModelError):
    """A text file is missing, unreadable, not UTF-8 or empty."""


class TrainingCancelled(ModelError):
    """Training was cancelled before any checkpoint could be evaluated."""
