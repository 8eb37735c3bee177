"""/corpus through the fake Discord: status, channels, upload checks, clear with confirmation."""

from __future__ import annotations

from typing import Any

from bot.core.storage import corpus, corpus_text
from bot.core.storage.db import session_scope
from tests.bot.conftest import World

NO_PINGS = {"parse": []}


def response_text(handle: Any) -> str:
    return str((handle.response or {}).get("data", {}).get("content", ""))


async def corpus_command(
    world: World, user: Any, subcommand: str, options: dict[str, Any] | None = None
) -> Any:
    return await world.fake.invoke_slash(
        world.guild, world.channel, user, "corpus", options or {}, subcommand=subcommand
    )


def stored_messages(world: World) -> list[str]:
    with session_scope(world.services.sessions) as session:
        return [
            text for text in corpus_text.corpus_text(session, world.guild.id).split("\n") if text
        ]


async def test_channel_add_then_status(world: World) -> None:
    refused = await corpus_command(world, world.member, "channel-add", {"channel": world.channel})
    await refused.wait_response(timeout_s=30)
    assert refused.ephemeral and "Manage Server" in response_text(refused)

    added = await corpus_command(world, world.admin, "channel-add", {"channel": world.channel})
    await added.wait_response(timeout_s=30)
    assert "Collecting" in response_text(added)

    await world.fake.send_message(world.channel, world.member, "hello parrot, learn this")
    status = await corpus_command(world, world.member, "status")
    edit = await status.wait_edit(timeout_s=30)
    assert status.ephemeral
    assert f"<#{world.channel.id}>" in (edit.content or "")
    for sent in world.fake.messages_sent():
        assert sent.allowed_mentions == NO_PINGS


async def test_upload_checks_type_and_size(world: World) -> None:
    wrong_type = await corpus_command(
        world, world.admin, "upload", {"file": ("picture.png", b"\x89PNG...", "image/png")}
    )
    await wrong_type.wait_response(timeout_s=30)
    assert wrong_type.ephemeral and ".txt" in response_text(wrong_type)

    limit = world.services.config.storage.max_upload_bytes
    too_big = await corpus_command(
        world, world.admin, "upload", {"file": ("big.txt", b"a" * (limit + 1), "text/plain")}
    )
    await too_big.wait_response(timeout_s=30)
    assert "limit" in response_text(too_big)

    binary = await corpus_command(
        world, world.admin, "upload", {"file": ("bin.txt", b"ab\x00cd", "text/plain")}
    )
    edit = await binary.wait_edit(timeout_s=30)
    assert "NUL" in (edit.content or "")

    ok = await corpus_command(
        world, world.admin, "upload", {"file": ("notes.txt", b"some notes\n" * 5, "text/plain")}
    )
    assert "Added notes.txt" in ((await ok.wait_edit(timeout_s=30)).content or "")
    again = await corpus_command(
        world, world.admin, "upload", {"file": ("copy.txt", b"some notes\n" * 5, "text/plain")}
    )
    assert "already" in ((await again.wait_edit(timeout_s=30)).content or "")


async def test_clear_needs_confirmation(world: World) -> None:
    ok = await corpus_command(
        world, world.admin, "upload", {"file": ("notes.txt", b"some notes\n" * 5, "text/plain")}
    )
    await ok.wait_edit(timeout_s=30)
    handle = await corpus_command(world, world.admin, "clear")
    await handle.wait_response(timeout_s=30)
    message = handle.original_message
    assert message is not None
    buttons = {
        c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]
    }

    keep = await world.fake.click_button(message, world.admin, buttons["Keep it"])
    await keep.wait_response(timeout_s=30)
    assert stored_messages(world)

    handle = await corpus_command(world, world.admin, "clear")
    await handle.wait_response(timeout_s=30)
    message = handle.original_message
    assert message is not None
    buttons = {
        c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]
    }
    confirm = await world.fake.click_button(message, world.admin, buttons["Delete everything"])
    await confirm.wait_response(timeout_s=30)
    assert "Deleted 0 messages and 1 documents" in str(confirm.response)
    assert stored_messages(world) == []


async def test_status_with_120_channels_fits_one_message(world: World) -> None:
    """Issue #14: past ~80 opted-in channels the status passed 2,000 characters and the edit
    failed with HTTP 400. Now it lists what fits and counts the rest."""
    channel_ids = [world.channel.id + 1_000 + i for i in range(120)]
    with session_scope(world.services.sessions) as session:
        for channel_id in channel_ids:
            corpus.set_channel_collect(session, world.guild.id, channel_id, True)
            corpus.set_channel_replies(session, world.guild.id, channel_id, True)
    world.services.collection.forget_settings(world.guild.id)  # written behind its back
    status = await corpus_command(world, world.member, "status")
    edit = await status.wait_edit(timeout_s=30)
    content = edit.content or ""
    assert len(content) <= 2_000
    assert f"<#{channel_ids[0]}>" in content and "more" in content
