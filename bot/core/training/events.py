"""Delivering training-run events: per-run watchers (async iterators) and listeners.

Everything here runs on the event loop: the manager emits each `RunEvent` once, and every
watcher of that run (one queue each) and every listener callback gets it. A watcher also
re-reads the run every `poll_seconds`, so a run executed by another process (the CLI while
the bot runs) is followed too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from bot.core.errors import InvalidInput
from bot.core.logs import get_logger
from bot.core.training.queue import RunEvent

log = get_logger(__name__)


class RunEvents:
    def __init__(self) -> None:
        self._watchers: dict[int, set[asyncio.Queue[RunEvent]]] = {}
        self._listeners: list[Callable[[RunEvent], None]] = []

    def add_listener(self, callback: Callable[[RunEvent], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[RunEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def emit(self, event: RunEvent) -> None:
        for queue in list(self._watchers.get(event.run_id, ())):
            queue.put_nowait(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("training event listener %r failed", callback)

    async def watch(
        self,
        run_id: int,
        snapshot: Callable[[int], Awaitable[RunEvent | None]],
        *,
        poll_seconds: float,
    ) -> AsyncIterator[RunEvent]:
        """`snapshot(run_id)` now, then each emitted or polled change, ending with the final.

        The watcher is registered before the first snapshot is read, so no event between
        the two is lost.
        """
        queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._watchers.setdefault(run_id, set()).add(queue)
        try:
            event = await snapshot(run_id)
            if event is None:
                raise InvalidInput(f"There is no training run {run_id}.")
            yield event
            while not event.final:
                try:
                    event = await asyncio.wait_for(queue.get(), poll_seconds)
                except TimeoutError:
                    polled = await snapshot(run_id)
                    if polled is None or (polled == event and not polled.final):
                        continue
                    event = polled
                yield event
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    self._watchers.pop(run_id, None)
