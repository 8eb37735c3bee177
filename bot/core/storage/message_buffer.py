"""Batched message collection: a small in-memory buffer flushed to the corpus store.

Discord delivers messages one by one; writing each in its own transaction would cost a
commit (and an fsync) per message. The buffer is flushed when it holds `max_batch` messages
or `interval` seconds after the first one arrived, in a worker thread. Edits and deletions
flush first, so they always apply to what is stored. `close()` flushes what is left.
One server's failing batch (a database locked past its busy timeout, say) never costs the
other servers their messages: it is logged and retried with the next flush, up to
`MAX_STORE_ATTEMPTS` times, then dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from bot.core.logs import get_logger
from bot.core.storage.corpus import IncomingMessage

log = get_logger(__name__)

# (server_id, messages) -> rows inserted; runs in a worker thread.
StoreBatch = Callable[[int, list[IncomingMessage]], int]

MAX_STORE_ATTEMPTS = 3


class MessageBuffer:
    def __init__(self, store: StoreBatch, *, max_batch: int = 200, interval: float = 1.0) -> None:
        self._store = store
        self._max_batch = max_batch
        self._interval = interval
        self._pending: dict[int, list[IncomingMessage]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()  # strong references until they finish
        self._failed_attempts: dict[int, int] = {}  # server id -> failed stores in a row

    @property
    def pending(self) -> int:
        return self._count

    async def add(self, server_id: int, message: IncomingMessage) -> None:
        self._pending.setdefault(server_id, []).append(message)
        self._count += 1
        if self._count >= self._max_batch:
            await self.flush()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval, self._flush_soon)

    def discard(self, message_ids: Iterable[int]) -> None:
        """Drop buffered messages that were deleted before they were stored."""
        doomed = set(message_ids)
        for server_id, messages in self._pending.items():
            kept = [m for m in messages if m.id not in doomed]
            self._count -= len(messages) - len(kept)
            self._pending[server_id] = kept

    def discard_server(self, server_id: int) -> None:
        self._count -= len(self._pending.pop(server_id, []))
        self._failed_attempts.pop(server_id, None)

    def discard_author(self, author_id: int, server_id: int | None = None) -> None:
        for sid, messages in self._pending.items():
            if server_id is not None and sid != server_id:
                continue
            kept = [m for m in messages if m.author_id != author_id]
            self._count -= len(messages) - len(kept)
            self._pending[sid] = kept

    async def flush(self) -> int:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            batches, self._pending, self._count = self._pending, {}, 0
            stored = 0
            for server_id, messages in batches.items():
                if messages:
                    stored += await self._store_or_requeue(server_id, messages)
            return stored

    async def _store_or_requeue(self, server_id: int, messages: list[IncomingMessage]) -> int:
        try:
            stored = await asyncio.to_thread(self._store, server_id, messages)
        except Exception:
            attempts = self._failed_attempts.get(server_id, 0) + 1
            if attempts >= MAX_STORE_ATTEMPTS:
                self._failed_attempts.pop(server_id, None)
                log.exception(
                    "dropping %d collected messages of server %d after %d failed attempts",
                    len(messages),
                    server_id,
                    attempts,
                )
                return 0
            self._failed_attempts[server_id] = attempts
            log.exception(
                "storing %d messages of server %d failed; retrying", len(messages), server_id
            )
            # Older messages go first, ahead of anything that arrived meanwhile.
            self._pending[server_id] = messages + self._pending.get(server_id, [])
            self._count += len(messages)
            self._schedule_flush()
            return 0
        self._failed_attempts.pop(server_id, None)
        return stored

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def close(self) -> None:
        await self.flush()


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("storing collected messages failed", exc_info=task.exception())
