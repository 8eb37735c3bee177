"""The message buffer: flushes by size and by time, drops what was deleted before storing."""

from __future__ import annotations

import asyncio

from bot.core.collector import MessageBuffer
from bot.core.corpus import IncomingMessage


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
