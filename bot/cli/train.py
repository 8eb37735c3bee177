"""`parrot train-server SERVER_ID`: train a server's model now, in the foreground.

The same path as the bot's `/train` and the scheduler: a row in `training_runs` (trigger
`cli`), the spawn worker, the registry's activation rule. Progress is shown as a tqdm bar
on stderr; Ctrl-C cancels the run (the active model stays). One run at a time per device:
while another process (the bot) is training, this waits (`--no-wait` skips that); if the
bot's queue picks the run up first, this command follows it instead of running it twice.

Exit status: 0 when the run succeeded (whether or not it was activated), 1 when it failed or
was cancelled, 2 for bad input (unknown server, corpus too small, a run already queued).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.kinds import RUN_ARCHS, RunStatus, RunTrigger
from bot.render import describe_finished_run

WAIT_POLL_SECONDS = 2.0

if TYPE_CHECKING:
    from bot.core.training.manager import TrainingManager
    from bot.core.training.queue import RunEvent
    from models.cli import Subcommands


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "train-server",
        help="train one server's model now (same path as /train)",
        description="Queue a training run for a server and run it in the foreground.",
    )
    parser.add_argument(
        "server_id", type=int, metavar="SERVER_ID", help="the Discord server (guild) id"
    )
    parser.add_argument(
        "--mode",
        choices=("fine-tune", "scratch"),
        default="fine-tune",
        help="continue the active model (default; from scratch when there is none) or start anew",
    )
    parser.add_argument(
        "--arch",
        choices=RUN_ARCHS,
        default=None,
        help="architecture for a scratch run (auto: train GRU and LSTM, keep the better)",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="start even if another process (the bot) is training right now",
    )
    parser.set_defaults(handler=run_train_server)


def run_train_server(args: argparse.Namespace) -> int:
    from bot.core.app import build
    from bot.core.config import load_config
    from bot.core.storage.db import upgrade_to_head

    config = load_config(args.config)
    upgrade_to_head(config.storage.resolved_database_url)
    services = build(config)

    async def train_then_close() -> RunEvent:
        try:
            return await _train(
                services.trainer,
                args.server_id,
                args.mode,
                args.arch,
                quiet=args.quiet,
                wait=not args.no_wait,
            )
        finally:
            await services.close()

    final = asyncio.run(train_then_close())
    print(describe_finished_run(final))
    return 0 if final.status == RunStatus.SUCCEEDED else 1


async def _train(
    manager: TrainingManager,
    server_id: int,
    mode: str,
    arch: str | None,
    *,
    quiet: bool,
    wait: bool = True,
) -> RunEvent:
    from bot.core.errors import TrainingBusy

    # Not `recover`: a bot sharing this database may be running a run right now.
    await manager.start(recover=False, dispatch=False)
    run_id = await manager.enqueue(server_id, trigger=RunTrigger.CLI, mode=mode, arch=arch)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[bool]] = set()

    def cancel() -> None:
        print("\ncancelling…", file=sys.stderr)
        task = asyncio.ensure_future(manager.cancel_run(run_id))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGINT, cancel)
    bar = ProgressBar(disabled=quiet)
    watcher = asyncio.create_task(_show(manager, run_id, bar))
    try:
        try:
            if wait:
                await _wait_for_the_device(manager, run_id)
            final = await manager.run_now(run_id)
        except TrainingBusy:
            print(
                f"run {run_id} was picked up by another Parrot process; following it",
                file=sys.stderr,
            )
            final = await watcher
        return final
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        bar.close()
        await manager.stop()


async def _wait_for_the_device(manager: TrainingManager, run_id: int) -> None:
    """One run at a time per device: let a run another process (the bot) has going finish.

    Returns when no other run is running, or when this run is no longer queued (cancelled
    with Ctrl-C, or picked up by the bot's queue; `run_now` then says so).
    """
    announced = False
    while True:
        pending = await manager.pending_runs()
        mine = next((run for run in pending if run.id == run_id), None)
        others = [run for run in pending if run.status == RunStatus.RUNNING and run.id != run_id]
        if mine is None or mine.status != RunStatus.QUEUED or not others:
            return
        if not announced:
            print(
                f"waiting for run {others[0].id} (server {others[0].server_id}) to finish: "
                "one training run at a time (--no-wait to skip)",
                file=sys.stderr,
            )
            announced = True
        await asyncio.sleep(WAIT_POLL_SECONDS)


async def _show(manager: TrainingManager, run_id: int, bar: ProgressBar) -> RunEvent:
    last: RunEvent | None = None
    async for event in manager.watch(run_id, poll_seconds=2.0):
        bar.update(event)
        last = event
    assert last is not None
    return last


class ProgressBar:
    """A tqdm bar over the run's fraction done (both phases of an `auto` run)."""

    def __init__(self, *, disabled: bool) -> None:
        self._disabled = disabled
        self._bar: Any = None

    def update(self, event: RunEvent) -> None:
        progress = event.progress
        if self._disabled or progress is None:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=1000,
                desc=f"run {event.run_id}",
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
                file=sys.stderr,
            )
        within = progress.step / progress.total_steps if progress.total_steps else 0.0
        fraction = ((progress.phase - 1) + min(1.0, within)) / max(1, progress.phases)
        target = int(1000 * fraction)
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)
        loss = "-" if progress.train_loss is None else f"{progress.train_loss:.3f}"
        val = "-" if progress.val_loss is None else f"{progress.val_loss:.3f}"
        self._bar.set_postfix_str(
            f"{progress.arch} step {progress.step}/{progress.total_steps} loss {loss} val {val} "
            f"{progress.chars_per_sec / 1000:.1f}k char/s",
            refresh=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
