"""/generate through the fake Discord: defer, streamed edits, buttons, safety, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.bot.conftest import World
from tests.fakediscord import CallbackType, InteractionHandle

NO_PINGS = {"parse": []}


async def wait_buttons(world: World, handle: InteractionHandle) -> dict[str, Any]:
    def has_buttons() -> bool:
        message = handle.original_message
        return bool(message and message.get("components"))

    await world.fake.wait_for(has_buttons, timeout=30, what="the buttons")
    message = handle.original_message
    assert message is not None
    return message


async def test_generate_happy_path(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "generate", {"start": "to be or", "length": 60}
    )
    await handle.wait_response()
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
    edit = await handle.wait_edit(timeout=30)
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
    await asyncio.gather(*(h.wait_response(timeout=10) for h in handles))
    latencies = [h.response_latency for h in handles]
    assert all(lat is not None and lat < 3.0 for lat in latencies), latencies
    await asyncio.gather(*(wait_buttons(world, h) for h in handles))
