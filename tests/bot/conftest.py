"""Fixtures for the bot tests: a real ParrotBot against the loopback fake Discord.

Everything is real except Discord: SQLite in tmp_path (migrated by the bot at start-up),
a tiny GRU checkpoint trained once per session, the real sampler, and the real training
manager with a spawn-started worker (with tiny `train_overrides` so a run takes seconds).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bot.client import ParrotBot
from bot.core.app import build
from bot.core.config import (
    CooldownConfig,
    DiscordConfig,
    ParrotConfig,
    ScheduleConfig,
    StorageConfig,
)
from bot.core.services import ParrotServices
from models.checkpoint import save_checkpoint
from models.presets import TINY
from models.train import train
from tests.fakediscord import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeUser,
    InteractionHandle,
    Permission,
    run_bot,
)
from tests.helpers.configs import FROM_SCRATCH
from tests.helpers.corpora import SMALL_TEXT

CORPUS_LINE = "the parrot sat on the perch and said hello to the sailors. "

# TrainConfig fields for every run the bot starts in tests: a run takes a few seconds.
TINY_TRAINING: dict[str, Any] = {
    "embed_dim": 16,
    "hidden_size": 32,
    "num_layers": 1,
    "dropout": 0.0,
    "seq_len": 32,
    "batch_size": 8,
    "eval_interval": 5,
    "warmup_steps": 2,
    "max_eval_chars": 2_000,
    "num_threads": 1,
    "device": "cpu",
    "max_steps": 30,
}


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) trained GRU checkpoint file, made once per test session."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = TINY
        checkpoint = train(SMALL_TEXT, config).checkpoint
    finally:
        torch.set_num_threads(previous)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.ckpt"
    save_checkpoint(checkpoint, path)
    return path


@pytest.fixture
def parrot_config(tmp_path: Path) -> ParrotConfig:
    data_dir = tmp_path / "data"
    return dataclasses.replace(
        ParrotConfig(model=FROM_SCRATCH),
        discord=DiscordConfig(shard_count=1),
        storage=StorageConfig(data_dir=str(data_dir)),
        schedule=ScheduleConfig(enabled=False),
        cooldowns=CooldownConfig(
            generate_per_user_seconds=0.0,
            generate_per_server_per_minute=0,
            train_per_server_seconds=0.0,
        ),
    )


@dataclass
class World:
    """The fake Discord with one server, its channel, an admin and a regular member."""

    fake: FakeDiscord
    bot: ParrotBot
    guild: FakeGuild
    channel: FakeChannel
    admin: FakeUser
    member: FakeUser

    @property
    def services(self) -> ParrotServices:
        return self.bot.services


def make_world_entities(fake: FakeDiscord) -> tuple[FakeGuild, FakeChannel, FakeUser, FakeUser]:
    admin = fake.add_user("admin")
    guild = fake.add_guild("Parrot Test", owner=admin)
    channel = fake.add_text_channel(guild, "general")
    member = fake.add_user("member")
    fake.add_member(guild, member)
    fake.add_member(guild, admin, permissions=Permission.MANAGE_GUILD)
    return guild, channel, admin, member


@pytest.fixture
async def world(fake_discord: FakeDiscord, parrot_config: ParrotConfig) -> AsyncIterator[World]:
    guild, channel, admin, member = make_world_entities(fake_discord)
    services = build(parrot_config, train_overrides=TINY_TRAINING)
    bot = ParrotBot(parrot_config, services=services)
    async with run_bot(bot, fake_discord):
        yield World(fake_discord, bot, guild, channel, admin, member)
    assert_nothing_pings(fake_discord)


def assert_nothing_pings(fake: FakeDiscord) -> None:
    """Every message payload the bot sent says `allowed_mentions: {"parse": []}`."""
    for sent in fake.messages_sent():
        payload = sent.payload
        if not any(key in payload for key in ("content", "embeds", "attachments", "components")):
            continue
        allowed = payload.get("allowed_mentions")
        assert allowed is not None and allowed.get("parse") == [], (sent.kind, payload)
        assert not allowed.get("users") and not allowed.get("roles")
        assert not allowed.get("replied_user")


@pytest.fixture
async def world_with_model(world: World, tiny_checkpoint_path: Path) -> World:
    await world.services.models.install(world.guild.id, tiny_checkpoint_path)
    return world


async def wait_for_buttons(world: World, handle: InteractionHandle) -> dict[str, Any]:
    """The response message once it carries buttons, ready to be clicked.

    The fake has the message as soon as the PATCH arrives; discord.py registers the buttons'
    View only when it reads the reply. No person clicks within that millisecond, so wait a
    little before returning.
    """

    def has_buttons() -> bool:
        message = handle.original_message
        return bool(message and message.get("components"))

    await world.fake.wait_for(has_buttons, timeout_s=30, what="the buttons")
    await asyncio.sleep(0.3)
    message = handle.original_message
    assert message is not None
    return message


def button_ids(message: dict[str, Any]) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}
