"""`parrot bot`: the token check, and a clean shutdown on SIGTERM against the fake Discord."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.run import run_bot
from bot.core.config import DiscordConfig, ParrotConfig
from bot.core.kinds import RunStatus
from bot.core.storage.tables import TrainingRun
from tests.fakediscord import FakeDiscord, pointed_at


def test_bot_without_a_token_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    config = tmp_path / "config.toml"
    config.write_text("[discord]\nshard_count = 1\n", encoding="utf-8")
    assert main(["bot", "--config", str(config)]) == 2
    assert "no Discord token" in capsys.readouterr().err


async def test_sigterm_closes_the_bot_cleanly(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig
) -> None:
    fake_discord.add_guild("Somewhere")
    # shard_count 0: AutoShardedBot asks GET /gateway/bot how many shards to run.
    config = dataclasses.replace(parrot_config, discord=DiscordConfig(shard_count=0))
    with pointed_at(fake_discord):
        task = asyncio.create_task(run_bot(config, fake_discord.token))
        await fake_discord.wait_until_connected(timeout_s=30)
        await fake_discord.wait_for(
            lambda: bool(fake_discord.requests_to("PUT", "/applications/")),
            timeout_s=30,
            what="the command sync",
        )
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 60) == 0
    # The database was migrated and closed; nothing was left running.
    from sqlalchemy import create_engine, select

    engine = create_engine(config.storage.resolved_database_url)
    with engine.connect() as connection:
        running = connection.execute(
            select(TrainingRun.id).where(TrainingRun.status == RunStatus.RUNNING)
        ).all()
    engine.dispose()
    assert running == []
