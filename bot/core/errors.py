"""Domain errors raised by the core and turned into user-facing text in one place.

Every error carries a message written for the person who caused it: the Discord tree's
error handler, the console and the CLI show `str(error)` as is. Nothing here imports Discord.
"""

from __future__ import annotations


class ParrotError(Exception):
    """Base of every error whose message is safe and useful to show to a user."""


class ConfigError(ParrotError):
    """The configuration file or environment is invalid."""


class InvalidInput(ParrotError):
    """A command argument or upload is out of bounds (too long, wrong type, bad encoding...)."""


class NotAllowed(ParrotError):
    """The caller lacks the permission the action needs (e.g. Manage Server for /train)."""


class ModelNotReady(ParrotError):
    """The server has no trained model yet."""

    def __init__(
        self, message: str = "This server has no model yet. An admin can start one with /train."
    ) -> None:
        super().__init__(message)


class ModelRebuilding(ModelNotReady):
    """The server's models were retired by a privacy request or `/corpus clear`, and a new
    one is queued or training."""

    def __init__(
        self,
        message: str = (
            "This server's model is being rebuilt without deleted or forgotten messages. "
            "Try again in a few minutes."
        ),
    ) -> None:
        super().__init__(message)


class ModelUnavailable(ModelNotReady):
    """The active model's file could not be read just now (I/O, permissions, memory)."""

    def __init__(
        self,
        message: str = "This server's model is temporarily unavailable. Try again in a minute.",
    ) -> None:
        super().__init__(message)


class GuardMissing(ModelNotReady):
    """The active model's copy-guard index is missing or unreadable: it is not served."""

    def __init__(
        self,
        message: str = (
            "This server's model is unavailable: its copy-guard index is missing or damaged. "
            "An admin can train a new model with /train."
        ),
    ) -> None:
        super().__init__(message)


class CorpusTooSmall(ParrotError):
    """There is not enough text to train on."""


class DuplicateUpload(ParrotError):
    """The same document (same sha256) was already uploaded to this server."""


class TrainingBusy(ParrotError):
    """A run for this server is already queued or running."""


class OnCooldown(ParrotError):
    """The user or server must wait before using the command again."""

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message or f"Slow down: try again in {retry_after:.0f}s.")
