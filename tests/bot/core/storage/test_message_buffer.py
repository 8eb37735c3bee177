"""The message buffer: flushes by size and by time, drops what was deleted before storing."""

from __future__ import annotations

import asyncio

from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.message_buffer import MessageBuffer


class Store:
    """Records batches; called from a worker thread, like the real store."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[int]]] = []
        self.stored = asyncio.Event()  # set once two batches arrived
        self._loop = asyncio.get_running_loop()

    def __call__(self, server_id: int, messages: list[IncomingMessage]) -> int:
        self.batches.append((server_id, [m.id for m in messages]))
        if len(self.batches) == 2:
            self._loop.call_soon_threadsafe(self.stored.set)
        return len(messages)


def message(message_id: int, author_id: int = 7) -> IncomingMessage:
    return IncomingMessage(message_id, channel_id=1, author_id=author_id, content=f"m{message_id}")


async def test_flushes_when_full() -> None:
    store = Store()
    buffer = MessageBuffer(store, max_batch=3, interval=60.0)
    for i in range(3):
        await buffer.add(1, message(i))
    assert store.batches == [(1, [0, 1, 2])]
    assert buffer.pending == 0


async def test_flushes_after_the_interval() -> None:
    store = Store()
    buffer = MessageBuffer(store, max_batch=100, interval=0.05)
    await buffer.add(1, message(1))
    await buffer.add(2, message(2))
    async with asyncio.timeout(5):
        await store.stored.wait()
    assert sorted(store.batches) == [(1, [1]), (2, [2])]


async def test_discards_and_close() -> None:
    store = Store()
    buffer = MessageBuffer(store, max_batch=100, interval=60.0)
    await buffer.add(1, message(1))
    await buffer.add(1, message(2, author_id=9))
    await buffer.add(1, message(3))
    await buffer.add(2, message(4))
    buffer.discard([1])
    buffer.discard_author(9)
    buffer.discard_server(2)
    assert buffer.pending == 1
    await buffer.close()
    assert store.batches == [(1, [3])]


class FlakyStore(Store):
    """Fails the first `failures` batches of server 1, like a database locked for a while."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def __call__(self, server_id: int, messages: list[IncomingMessage]) -> int:
        if server_id == 1 and self.failures > 0:
            self.failures -= 1
            raise RuntimeError("database is locked")
        return super().__call__(server_id, messages)


async def test_a_failing_server_costs_the_others_nothing_and_is_retried() -> None:
    store = FlakyStore(failures=1)
    buffer = MessageBuffer(store, max_batch=100, interval=60.0)
    await buffer.add(1, message(1))
    await buffer.add(2, message(2))
    await buffer.flush()
    assert store.batches == [(2, [2])]
    assert buffer.pending == 1  # server 1's batch is kept for the next flush
    await buffer.add(1, message(3))
    await buffer.close()
    assert store.batches == [(2, [2]), (1, [1, 3])]
    assert buffer.pending == 0


async def test_a_batch_that_keeps_failing_is_dropped() -> None:
    store = FlakyStore(failures=100)
    buffer = MessageBuffer(store, max_batch=100, interval=60.0)
    await buffer.add(1, message(1))
    for _ in range(3):
        await buffer.flush()
    assert buffer.pending == 0
    assert store.batches == []
