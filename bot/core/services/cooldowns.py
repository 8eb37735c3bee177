"""Cooldown bookkeeping for commands: per user, per server, in memory.

Cooldowns protect the sampler and the training queue from one busy user or server; they are
deliberately not persisted (a restart forgives everyone). The clock is injected so tests can
move time without sleeping. `check_*` only looks; `hit_*` records a use. Callers check before
doing work and record once the request is accepted, so a refused request costs nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.core.config import CooldownConfig
from bot.core.errors import OnCooldown
from bot.core.inputs import COOLDOWN_SECONDS_MAX

SERVER_WINDOW_SECONDS = 60.0
PRUNE_EVERY_SECONDS = 60.0  # how often idle users and servers are dropped from the maps


@dataclass
class Cooldowns:
    config: CooldownConfig
    clock: Callable[[], float] = time.monotonic
    _user_last_generate: dict[tuple[int, int], float] = field(default_factory=dict)
    _server_generates: dict[int, deque[float]] = field(default_factory=dict)
    _server_last_train: dict[int, float] = field(default_factory=dict)
    _next_prune: float = float("-inf")

    def check_generate(
        self, server_id: int, user_id: int, *, user_seconds: float | None = None
    ) -> None:
        """Raise OnCooldown when the user or the server must wait before generating again.

        `user_seconds` overrides the configured per-user cooldown (a server setting).
        """
        now = self.clock()
        per_user = self.config.generate_per_user_seconds if user_seconds is None else user_seconds
        last = self._user_last_generate.get((server_id, user_id))
        if last is not None and now - last < per_user:
            raise OnCooldown(
                per_user - (now - last),
                f"Slow down: you can generate again in {_seconds(per_user - (now - last))}.",
            )
        limit = self.config.generate_per_server_per_minute
        if limit > 0:
            window = self._window(server_id, now)
            if len(window) >= limit:
                wait = SERVER_WINDOW_SECONDS - (now - window[0])
                raise OnCooldown(
                    wait,
                    f"This server is generating a lot right now: try again in {_seconds(wait)}.",
                )

    def hit_generate(self, server_id: int, user_id: int) -> None:
        now = self.clock()
        self._prune(now)
        self._user_last_generate[(server_id, user_id)] = now
        self._window(server_id, now).append(now)

    def take_generate(
        self, server_id: int, user_id: int, *, user_seconds: float | None = None
    ) -> None:
        """Check and record in one step (the usual case)."""
        self.check_generate(server_id, user_id, user_seconds=user_seconds)
        self.hit_generate(server_id, user_id)

    def check_train(self, server_id: int) -> None:
        now = self.clock()
        per_server = self.config.train_per_server_seconds
        last = self._server_last_train.get(server_id)
        if last is not None and now - last < per_server:
            wait = per_server - (now - last)
            raise OnCooldown(
                wait, f"A run was started recently: you can start another in {_seconds(wait)}."
            )

    def hit_train(self, server_id: int) -> None:
        self._server_last_train[server_id] = self.clock()

    def forget_server(self, server_id: int) -> None:
        self._server_generates.pop(server_id, None)
        self._server_last_train.pop(server_id, None)
        for key in [key for key in self._user_last_generate if key[0] == server_id]:
            del self._user_last_generate[key]

    def _prune(self, now: float) -> None:
        """Forget uses older than any cooldown could be, so a long-running bot's maps hold
        only recent users and servers instead of everyone who ever generated."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_SECONDS
        # A server can set a per-user cooldown up to COOLDOWN_SECONDS_MAX (/settings).
        horizon = max(self.config.generate_per_user_seconds, COOLDOWN_SECONDS_MAX)
        stale = [key for key, last in self._user_last_generate.items() if now - last >= horizon]
        for key in stale:
            del self._user_last_generate[key]
        for server_id in list(self._server_generates):
            if not self._window(server_id, now):
                del self._server_generates[server_id]

    def _window(self, server_id: int, now: float) -> deque[float]:
        window = self._server_generates.setdefault(server_id, deque())
        while window and now - window[0] >= SERVER_WINDOW_SECONDS:
            window.popleft()
        return window


def _seconds(wait: float) -> str:
    """Round up, so "try again in 1s" is never a lie; minutes past 90 seconds."""
    whole = max(1, int(-(-wait // 1)))
    if whole >= 90:
        return f"{-(-whole // 60)} min"
    return f"{whole}s"
