"""ParrotBot as Discord sees it: intents, registered commands and their bounds, cooldowns."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.client import ParrotBot, parrot_intents
from bot.core.app import build
from bot.core.config import CooldownConfig, ParrotConfig
from tests.bot.conftest import (
    TINY_TRAINING,
    World,
    button_ids,
    make_world_entities,
    wait_for_buttons,
)
from tests.fakediscord import FakeDiscord, run_bot


def option(command: dict[str, Any], *path: str) -> dict[str, Any]:
    options = command.get("options", [])
    for name in path:
        found = next(o for o in options if o["name"] == name)
        options = found.get("options", [])
        command = found
    return command


def test_intents_include_message_content() -> None:
    intents = parrot_intents()
    assert intents.message_content and intents.guilds and intents.guild_messages


async def test_commands_are_registered_with_bounds(world: World) -> None:
    fake = world.fake
    names = {c["name"] for c in fake.global_commands}
    assert names == {"generate", "train", "corpus", "model", "privacy", "settings"}
    generate = fake.registered_command("generate")
    assert generate is not None
    start = option(generate, "start")
    assert (start["min_length"], start["max_length"], start["required"]) == (1, 500, True)
    length = option(generate, "length")
    assert (length["min_value"], length["max_value"]) == (1, 1500)
    temperature = option(generate, "temperature")
    assert (temperature["min_value"], temperature["max_value"]) == (0.1, 2.0)
    train = fake.registered_command("train")
    assert train is not None
    assert str(train["default_member_permissions"]) == str(1 << 5)  # Manage Server (a hint)
    mode = option(train, "start", "mode")
    assert {c["value"] for c in mode["choices"]} == {"fine-tune", "scratch"}
    arch = option(train, "start", "arch")
    assert {c["value"] for c in arch["choices"]} == {"gru", "lstm", "auto"}
    settings = fake.registered_command("settings")
    assert settings is not None
    assert str(settings["default_member_permissions"]) == str(1 << 5)
    seconds = option(settings, "cooldown", "seconds")
    assert (seconds["min_value"], seconds["max_value"], seconds["required"]) == (0, 3600, False)
    assert world.bot.allowed_mentions is not None
    assert world.bot.allowed_mentions.to_dict() == {"parse": []}


@pytest.fixture
async def strict_world(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig, tiny_checkpoint_path: Path
) -> AsyncIterator[World]:
    config = dataclasses.replace(
        parrot_config,
        cooldowns=CooldownConfig(
            generate_per_user_seconds=60.0,
            generate_per_server_per_minute=2,
            train_per_server_seconds=300.0,
        ),
    )
    guild, channel, admin, member = make_world_entities(fake_discord)
    services = build(config, train_overrides=TINY_TRAINING)
    bot = ParrotBot(config, services=services)
    async with run_bot(bot, fake_discord):
        await services.models.install(guild.id, tiny_checkpoint_path)
        yield World(fake_discord, bot, guild, channel, admin, member)


async def test_cooldowns_answer_with_the_time_to_wait(strict_world: World) -> None:
    world = strict_world

    async def generate(user: Any) -> Any:
        handle = await world.fake.invoke_slash(
            world.guild, world.channel, user, "generate", {"start": "to be", "length": 5}
        )
        await handle.wait_response(timeout_s=30)
        return handle

    first = await generate(world.member)
    assert first.deferred
    message = await wait_for_buttons(world, first)
    click = await world.fake.click_button(message, world.member, button_ids(message)["Regenerate"])
    await click.wait_response(timeout_s=30)
    assert click.ephemeral and "you can generate again in" in str(click.response)
    again = await generate(world.member)
    assert again.ephemeral and "you can generate again in 60s" in str(again.response)
    other = await generate(world.admin)
    assert other.deferred
    third = await generate(world.fake.add_user("third"))
    assert third.ephemeral and "server is generating a lot" in str(third.response)
