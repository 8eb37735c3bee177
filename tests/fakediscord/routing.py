"""Shared plumbing for the fake's REST routes: handler types and Discord-shaped errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakediscord.records import RecordedRequest

Payload = dict[str, Any]
Result = tuple[int, Any]  # (HTTP status, JSON body or None)
Handler = Callable[[RecordedRequest, dict[str, str]], Awaitable[Result]]
# (method, path template under /api/v10, handler, needs "Authorization: Bot <token>")
RouteSpec = tuple[str, str, Handler, bool]


class ApiError(Exception):
    """An error answer in Discord's shape: `{"code": ..., "message": ...}`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RateLimitedError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.3f}s")
        self.retry_after = retry_after


def unknown(what: str, code: int) -> ApiError:
    """Discord's 404 for a missing object, e.g. `unknown("Channel", 10003)`."""
    return ApiError(404, code, f"Unknown {what}")
