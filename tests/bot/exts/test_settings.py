"""/settings through the fake Discord: Manage Server inside the command, the per-server
/generate cooldown set, shown, honoured and reset."""

from __future__ import annotations

from typing import Any

from bot.core.storage import corpus
from bot.core.storage.db import session_scope
from tests.bot.conftest import World, wait_for_buttons


def response_text(handle: Any) -> str:
    return str((handle.response or {}).get("data", {}).get("content", ""))


async def settings_command(
    world: World, user: Any, subcommand: str, options: dict[str, Any] | None = None
) -> Any:
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, user, "settings", options or {}, subcommand=subcommand
    )
    await handle.wait_response(timeout_s=30)
    return handle


async def generate(world: World, user: Any) -> Any:
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, user, "generate", {"start": "to be", "length": 5}
    )
    await handle.wait_response(timeout_s=30)
    return handle


def stored_cooldown(world: World) -> float | None:
    with session_scope(world.services.sessions) as session:
        return corpus.generate_cooldown_override(session, world.guild.id)


async def test_members_cannot_see_or_change_settings(world: World) -> None:
    for subcommand, options in (
        ("cooldown", {"seconds": 5}),
        ("cooldown", {}),
        ("cooldown-reset", {}),
    ):
        refused = await settings_command(world, world.member, subcommand, options)
        assert refused.ephemeral and "Manage Server" in response_text(refused), subcommand
    assert stored_cooldown(world) is None


async def test_a_server_cooldown_is_honoured_then_reset(world_with_model: World) -> None:
    world = world_with_model
    shown = await settings_command(world, world.admin, "cooldown")
    assert shown.ephemeral and "no wait" in response_text(shown)
    assert "default" in response_text(shown)

    changed = await settings_command(world, world.admin, "cooldown", {"seconds": 600})
    assert changed.ephemeral and "600 seconds" in response_text(changed)
    assert stored_cooldown(world) == 600.0
    shown = await settings_command(world, world.admin, "cooldown")
    assert "600 seconds" in response_text(shown) and "set for this server" in response_text(shown)

    first = await generate(world, world.member)
    assert first.deferred
    await wait_for_buttons(world, first)
    again = await generate(world, world.member)
    assert again.ephemeral and "you can generate again in 10 min" in response_text(again)

    reset = await settings_command(world, world.admin, "cooldown-reset")
    assert reset.ephemeral and "default" in response_text(reset)
    assert stored_cooldown(world) is None
    after_reset = await generate(world, world.member)
    assert after_reset.deferred  # the config's cooldown (none in tests) applies again
    await wait_for_buttons(world, after_reset)
