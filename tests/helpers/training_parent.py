"""A stand-in bot process for the kill -9 tests: starts a training run and reports its
worker's pid, then waits to be killed.

    python -m tests.helpers.training_parent DATABASE_URL DATA_DIR SERVER_ID OVERRIDES_JSON

Prints one JSON line, {"run_id": ..., "worker_pid": ...}, once the worker reports progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.config import ParrotConfig, StorageConfig
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.training.manager import TrainingManager
from tests.helpers.configs import FROM_SCRATCH


async def main(
    database_url: str, data_dir: str, server_id: int, overrides: dict[str, object]
) -> None:
    config = dataclasses.replace(
        ParrotConfig(model=FROM_SCRATCH),
        storage=StorageConfig(data_dir=data_dir, database_url=database_url),
    )
    sessions = make_session_factory(make_engine(database_url))
    manager = TrainingManager(
        config, sessions, ModelRegistry.from_config(config, sessions), train_overrides=overrides
    )
    await manager.start()
    run_id = await manager.enqueue(server_id, mode="scratch", arch="gru")
    async for event in manager.watch(run_id):
        process = manager.worker_process()
        if event.progress is not None and event.progress.step > 0 and process is not None:
            print(json.dumps({"run_id": run_id, "worker_pid": process.pid}), flush=True)
            break
    await asyncio.sleep(3600)  # until the test kills this process


if __name__ == "__main__":
    url, directory, server, settings = sys.argv[1:5]
    asyncio.run(main(url, directory, int(server), json.loads(settings)))
