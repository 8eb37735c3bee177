"""Opt-in rate limits, answered with 429s the way Discord does (discord.py then waits and retries).

Off by default; a test enables one per route, e.g. Discord's limit on editing one message:

    fake.rate_limits.add("PATCH", "/webhooks/{app_id}/{token}/messages/@original", limit=5, per_s=5.0)

Requests over the limit are answered 429 with `retry_after` and recorded in
`fake.rate_limits.limited`, so a test can assert the bot stayed within the limit.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from tests.fakediscord.records import RecordedRequest

# Path parameters that scope a bucket, like Discord's "major parameters".
MAJOR_PARAMETERS = ("token", "channel_id", "guild_id")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    per_s: float


@dataclass
class RateLimiter:
    rules: dict[tuple[str, str], RateLimit] = field(default_factory=dict)
    limited: list[RecordedRequest] = field(default_factory=list)
    _hits: dict[tuple[str, ...], deque[float]] = field(default_factory=dict)

    def add(self, method: str, route_template: str, *, limit: int, per_s: float) -> None:
        """Limit `method route_template` (a template from rest.py, e.g. "/channels/{channel_id}/messages")
        to `limit` requests per `per_s` seconds per token/channel/guild."""
        self.rules[(method.upper(), route_template)] = RateLimit(limit, per_s)

    def retry_after(
        self, request: RecordedRequest, route_template: str, params: dict[str, str]
    ) -> float | None:
        """None if the request may proceed (and counts it), else seconds until it may."""
        rule = self.rules.get((request.method, route_template))
        if rule is None:
            return None
        scope = tuple(params[name] for name in MAJOR_PARAMETERS if name in params)
        hits = self._hits.setdefault((request.method, route_template, *scope), deque())
        now = time.monotonic()
        while hits and now - hits[0] >= rule.per_s:
            hits.popleft()
        if len(hits) >= rule.limit:
            self.limited.append(request)
            return rule.per_s - (now - hits[0])
        hits.append(now)
        return None
