"""/generate through the fake Discord: defer, streamed edits, buttons, safety, concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.client import ParrotBot
from bot.core.app import build
from bot.core.config import ParrotConfig
from tests.bot.conftest import World, make_world_entities, wait_for_buttons
from tests.fakediscord import CallbackType, FakeDiscord, InteractionHandle, run_bot

NO_PINGS = {"parse": []}


async def wait_buttons(world: World, handle: InteractionHandle) -> dict[str, Any]:
    return await wait_for_buttons(world, handle)


async def test_generate_happy_path(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be or", "length": 60}
    )
    await handle.wait_response(timeout_s=30)
    assert handle.response_type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    message = await wait_buttons(world, handle)
    assert message["content"].startswith("**to be or**")
    assert len(message["content"]) > len("**to be or**")
    labels = [c["label"] for row in message["components"] for c in row["components"]]
    assert labels == ["Regenerate", "Continue"]
    for sent in handle.sent_messages:
        assert sent.allowed_mentions == NO_PINGS


async def test_no_model_names_train(world: World) -> None:
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "hello"}
    )
    edit = await handle.wait_edit(timeout_s=30)
    assert "/train" in (edit.content or "")


async def test_generate_is_acknowledged_while_the_database_is_locked(world: World) -> None:
    """Issue #14: /generate defers before any database read. Another connection holds
    SQLite's write lock (the main engine's transactions begin IMMEDIATE, reads too); the
    acknowledgement still arrives while it is held, and the answer once it is released."""
    database = world.services.config.storage.resolved_database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        handle = await world.fake.invoke_slash(
            world.guild, world.channel, world.member, "generate", {"start": "hello"}
        )
        await handle.wait_response(timeout_s=30)  # no database read has happened yet
        assert handle.response_type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        assert handle.edits == []  # the answer needs the database: it waits for the lock
    finally:
        holder.rollback()
        holder.close()
    edit = await handle.wait_edit(timeout_s=30)
    assert "/train" in (edit.content or "")


async def test_thirty_concurrent_generates_are_all_acknowledged_in_time(
    world_with_model: World,
) -> None:
    world = world_with_model
    users = [world.fake.add_user(f"user{i}") for i in range(30)]
    handles = await asyncio.gather(
        *(
            world.fake.invoke_slash(
                world.guild, world.channel, user, "generate", {"start": f"prompt {i}", "length": 50}
            )
            for i, user in enumerate(users)
        )
    )
    await asyncio.gather(*(h.wait_response(timeout_s=10) for h in handles))
    latencies = [h.response_latency for h in handles]
    assert all(lat is not None and lat < 3.0 for lat in latencies), latencies
    await asyncio.gather(*(wait_buttons(world, h) for h in handles))
    done = max(h.edits[-1].sent_at - h.dispatched_at for h in handles)
    logging.getLogger(__name__).info(
        "30 concurrent /generate: acknowledged in max %.3fs, all finished within %.2fs",
        max(lat or 0.0 for lat in latencies),
        done,
    )


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 501, "limit is 500"),
        ("bell\x07 ring", "control characters"),
        ("\u200b\u200b\u200b", "empty"),
    ],
)
async def test_hostile_prompts_are_refused_clearly(
    world_with_model: World, prompt: str, expected: str
) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.member,
        "generate",
        {"start": prompt},
        enforce_constraints=False,
    )
    await handle.wait_response(timeout_s=30)
    assert handle.response_type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
    assert handle.ephemeral
    assert expected in (handle.response or {})["data"]["content"]
    for sent in handle.sent_messages:
        assert sent.allowed_mentions == NO_PINGS


@pytest.mark.parametrize(
    "prompt",
    ["@everyone to be", "<@123> or not", "@here \u200b@everyone", "日本語 🦜 unseen ✨"],
)
async def test_mention_prompts_ping_no_one(world_with_model: World, prompt: str) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": prompt, "length": 20}
    )
    message = await wait_buttons(world, handle)
    assert "@everyone" not in message["content"] and "<@123>" not in message["content"]
    for sent in handle.sent_messages:
        assert sent.allowed_mentions == NO_PINGS
        pings = world.fake.pings(sent)
        assert not pings.everyone and not pings.users and not pings.roles


async def test_long_output_becomes_a_text_attachment(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.member,
        "generate",
        {"start": "a" * 500, "length": 1500, "temperature": 2.0},
    )
    await wait_buttons(world, handle)
    final = handle.edits[-1]
    assert len(final.content or "") <= 2000
    assert final.files and final.files[0].filename.endswith(".txt")
    assert final.files[0].text().startswith("a" * 500)  # plain text, no markdown


def buttons_of(message: dict[str, Any]) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}


async def test_regenerate_and_continue_buttons(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be", "length": 40}
    )
    message = await wait_buttons(world, handle)
    first = message["content"]
    buttons = buttons_of(message)

    stranger = await world.fake.click_button(message, world.admin, buttons["Continue"])
    await stranger.wait_response(timeout_s=30)
    assert stranger.ephemeral and "belong" in (stranger.response or {})["data"]["content"]

    click = await world.fake.click_button(message, world.member, buttons["Continue"])
    await click.wait_response(timeout_s=30)
    assert click.response_type == CallbackType.DEFERRED_UPDATE_MESSAGE

    def continued() -> bool:
        current = world.fake.messages.get(int(message["id"]))
        return bool(current and len(current["content"]) > len(first) and current.get("components"))

    await world.fake.wait_for(continued, timeout_s=30, what="the continued text")
    current = world.fake.messages[int(message["id"])]
    assert current["content"].startswith(first)

    click = await world.fake.click_button(current, world.member, buttons_of(current)["Regenerate"])
    await click.wait_response(timeout_s=30)
    await world.fake.wait_for(
        lambda: (
            len(click.sent_messages) > 0 and bool(click.sent_messages[-1].payload.get("components"))
        ),
        timeout_s=30,
        what="the regenerated text",
    )
    for sent in world.fake.messages_sent():
        assert sent.allowed_mentions == NO_PINGS


@pytest.fixture
async def quick_buttons_world(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig, tiny_checkpoint_path: Path
) -> AsyncIterator[World]:
    config = dataclasses.replace(
        parrot_config,
        generation=dataclasses.replace(parrot_config.generation, button_timeout_seconds=0.5),
    )
    guild, channel, admin, member = make_world_entities(fake_discord)
    bot = ParrotBot(config, services=build(config))
    async with run_bot(bot, fake_discord):
        await bot.services.models.install(guild.id, tiny_checkpoint_path)
        yield World(fake_discord, bot, guild, channel, admin, member)


async def test_buttons_expire(quick_buttons_world: World) -> None:
    world = quick_buttons_world
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be", "length": 10}
    )
    await wait_buttons(world, handle)

    def buttons_gone() -> bool:
        message = handle.original_message
        return bool(message) and not (message or {}).get("components")

    await world.fake.wait_for(buttons_gone, timeout_s=30, what="the buttons to expire")


async def test_streaming_edits_are_rate_limited(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be", "length": 1500}
    )
    await wait_buttons(world, handle)
    edits = handle.edits
    assert edits
    span = edits[-1].sent_at - handle.dispatched_at
    # At most one partial edit per second, plus the final one.
    assert len(edits) <= span + 2
    partials = edits[:-1]
    for earlier, later in itertools.pairwise(partials):
        assert len(later.content or "") >= len(earlier.content or "")  # the text only grows


@pytest.fixture
async def no_cooldown_world(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig, tiny_checkpoint_path: Path
) -> AsyncIterator[World]:
    config = dataclasses.replace(
        parrot_config,
        cooldowns=dataclasses.replace(
            parrot_config.cooldowns,
            generate_per_user_seconds=0.0,
            generate_per_server_per_minute=1000,
        ),
    )
    guild, channel, admin, member = make_world_entities(fake_discord)
    bot = ParrotBot(config, services=build(config))
    async with run_bot(bot, fake_discord):
        await bot.services.models.install(guild.id, tiny_checkpoint_path)
        yield World(fake_discord, bot, guild, channel, admin, member)


async def test_two_quick_clicks_on_continue_start_one_stream(no_cooldown_world: World) -> None:
    world = no_cooldown_world
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be", "length": 200}
    )
    message = await wait_buttons(world, handle)
    continue_id = buttons_of(message)["Continue"]
    # The second click arrives while the first is still being acknowledged (well within
    # 10 ms on the loopback fake).
    first, second = await asyncio.gather(
        world.fake.click_button(message, world.member, continue_id),
        world.fake.click_button(message, world.member, continue_id),
    )
    await first.wait_response(timeout_s=30)
    await second.wait_response(timeout_s=30)
    kinds = [first.response_type, second.response_type]
    assert kinds.count(CallbackType.DEFERRED_UPDATE_MESSAGE) == 1, kinds
    refused = second if second.ephemeral else first
    assert refused.ephemeral and "Still writing" in (refused.response or {})["data"]["content"]


async def test_a_server_without_a_model_is_answered_by_the_base_model(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig, tiny_checkpoint_path: Path
) -> None:
    """Issue #10: the bot is useful the minute it joins, and says in one line why."""
    config = dataclasses.replace(
        parrot_config,
        model=dataclasses.replace(parrot_config.model, base=str(tiny_checkpoint_path)),
    )
    guild, channel, admin, member = make_world_entities(fake_discord)
    bot = ParrotBot(config, services=build(config))
    async with run_bot(bot, fake_discord):
        world = World(fake_discord, bot, guild, channel, admin, member)
        handle = await fake_discord.invoke_slash(
            guild, channel, member, "generate", {"start": "to be", "length": 40}
        )
        message = await wait_buttons(world, handle)
        first_line, rest = message["content"].split("\n", 1)
        assert first_line == "-# From Parrot's base model: this server has no model of its own yet."
        assert rest.startswith("**to be**")
        # Once the server has its own model, the note goes.
        await bot.services.models.install(guild.id, tiny_checkpoint_path)
        again = await fake_discord.invoke_slash(
            guild, channel, member, "generate", {"start": "to be", "length": 40}
        )
        assert (await wait_buttons(world, again))["content"].startswith("**to be**")
