"""Run events: watchers get a snapshot, then their run's events until the final one;
listeners get every event; a run finished elsewhere is noticed by polling."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.errors import InvalidInput
from bot.core.kinds import RunStatus
from bot.core.training.events import RunEvents
from bot.core.training.queue import RunEvent

QUEUED = RunEvent(run_id=1, server_id=9, status=RunStatus.QUEUED, queue_position=1)
RUNNING = RunEvent(run_id=1, server_id=9, status=RunStatus.RUNNING)
DONE = RunEvent(run_id=1, server_id=9, status=RunStatus.SUCCEEDED)
OTHER = RunEvent(run_id=2, server_id=9, status=RunStatus.RUNNING)


async def test_a_watcher_gets_the_snapshot_then_its_runs_events_until_the_final_one() -> None:
    events = RunEvents()
    heard: list[RunEvent] = []

    def broken(event: RunEvent) -> None:
        raise RuntimeError("a listener's bug is logged, not spread")

    events.add_listener(broken)
    events.add_listener(heard.append)

    registered = asyncio.Event()

    async def snapshot(run_id: int) -> RunEvent | None:
        registered.set()  # the watcher is registered before the snapshot is read
        return QUEUED

    watched: list[RunEvent] = []

    async def follow() -> None:
        async for event in events.watch(1, snapshot, poll_seconds=60.0):
            watched.append(event)

    task = asyncio.create_task(follow())
    await asyncio.wait_for(registered.wait(), 30.0)
    for event in (OTHER, RUNNING, DONE):
        events.emit(event)
    await asyncio.wait_for(task, 30.0)
    assert watched == [QUEUED, RUNNING, DONE]
    assert heard == [OTHER, RUNNING, DONE]
    events.remove_listener(heard.append)
    events.remove_listener(heard.append)  # twice is harmless
    events.emit(RUNNING)
    assert len(heard) == 3


async def test_a_run_finished_elsewhere_is_seen_by_polling() -> None:
    states = iter([RUNNING, RUNNING, DONE])

    async def snapshot(run_id: int) -> RunEvent | None:
        return next(states)

    watched = [event async for event in RunEvents().watch(1, snapshot, poll_seconds=0.01)]
    assert watched == [RUNNING, DONE]  # an unchanged poll is not repeated


async def test_watching_an_unknown_run_says_so() -> None:
    async def snapshot(run_id: int) -> RunEvent | None:
        return None

    with pytest.raises(InvalidInput, match="no training run 5"):
        async for _ in RunEvents().watch(5, snapshot, poll_seconds=1.0):
            pass
