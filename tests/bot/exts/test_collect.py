"""Message collection through the gateway: store, edit, delete (raw), opt-out, leaving."""

from __future__ import annotations

import gzip
from pathlib import Path

from bot.core.storage import tables
from bot.core.storage.db import session_scope
from bot.core.storage.tables import Message
from tests.bot.conftest import World


async def opt_in_channel(world: World) -> None:
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.admin,
        "corpus",
        {"channel": world.channel},
        subcommand="channel-add",
    )
    await handle.wait_response(timeout_s=30)


def stored(world: World) -> dict[int, str]:
    with session_scope(world.services.sessions) as session:
        return {m.id: m.content for m in session.query(Message).all()}


async def flushed(world: World) -> dict[int, str]:
    await world.services.collection.buffer.flush()
    return stored(world)


async def test_messages_are_collected_edited_and_deleted(world: World) -> None:
    await opt_in_channel(world)
    elsewhere = world.fake.add_text_channel(world.guild, "elsewhere")
    await world.fake.join_guild(world.guild)
    await world.fake.send_message(elsewhere, world.member, "not in an opted-in channel")
    first = await world.fake.send_message(world.channel, world.member, "first message")
    second = await world.fake.send_message(world.channel, world.admin, "second message")
    bot_user = world.fake.add_user("otherbot", bot=True)
    await world.fake.send_message(world.channel, bot_user, "beep from a bot")
    await world.fake.wait_for(
        lambda: world.services.collection.buffer.pending >= 2 or len(stored(world)) >= 2,
        timeout_s=10,
        what="collection",
    )
    rows = await flushed(world)
    assert sorted(rows.values()) == ["first message", "second message"]

    await world.fake.edit_message(first, "first message, edited")
    await world.fake.wait_for(
        lambda: stored(world).get(int(first["id"])) == "first message, edited",
        timeout_s=10,
        what="the edit",
    )
    await world.fake.delete_message(second)
    await world.fake.wait_for(
        lambda: int(second["id"]) not in stored(world), timeout_s=10, what="the delete"
    )
    third = await world.fake.send_message(world.channel, world.member, "third")
    await flushed(world)
    await world.fake.delete_messages(world.channel, [first, third])
    await world.fake.wait_for(lambda: stored(world) == {}, timeout_s=10, what="the bulk delete")


async def test_nsfw_channels_are_not_collected(world: World) -> None:
    nsfw = world.fake.add_text_channel(world.guild, "after-dark", nsfw=True)
    await world.fake.join_guild(world.guild)
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.admin,
        "corpus",
        {"channel": nsfw},
        subcommand="channel-add",
    )
    await handle.wait_response(timeout_s=30)
    await opt_in_channel(world)
    await world.fake.send_message(nsfw, world.member, "spicy")
    # Events are handled in order: once the next one is buffered, the first was seen.
    await world.fake.send_message(world.channel, world.member, "sync point")
    await world.fake.wait_for(
        lambda: world.services.collection.buffer.pending >= 1, timeout_s=10, what="collection"
    )
    assert list((await flushed(world)).values()) == ["sync point"]


async def test_opt_out_export_forget(world: World) -> None:
    await opt_in_channel(world)
    await world.fake.send_message(world.channel, world.member, "mine, remember me")
    await world.fake.wait_for(
        lambda: world.services.collection.buffer.pending >= 1, timeout_s=10, what="collection"
    )

    export = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "privacy", {}, subcommand="export"
    )
    edit = await export.wait_edit(timeout_s=30)
    assert export.ephemeral
    assert edit.files and '"mine, remember me"' in gzip.decompress(edit.files[0].data).decode()

    optout = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "privacy", {}, subcommand="optout"
    )
    edit = await optout.wait_edit(timeout_s=30)
    assert optout.ephemeral and "Deleted 1 messages" in (edit.content or "")
    await world.fake.send_message(world.channel, world.member, "opted out now")
    await world.fake.wait_for(
        lambda: world.services.collection.buffer.pending >= 1, timeout_s=10, what="collection"
    )
    assert await flushed(world) == {}  # buffered, then dropped by the store

    optin = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "privacy", {}, subcommand="optin"
    )
    await optin.wait_response(timeout_s=30)
    await world.fake.send_message(world.channel, world.member, "back again")
    await world.fake.wait_for(
        lambda: world.services.collection.buffer.pending >= 1, timeout_s=10, what="collection"
    )
    assert list((await flushed(world)).values()) == ["back again"]

    forget = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.member,
        "privacy",
        {"scope": "everywhere"},
        subcommand="forget",
    )
    edit = await forget.wait_edit(timeout_s=30)
    assert forget.ephemeral and "Deleted 1 messages" in (edit.content or "")
    assert await flushed(world) == {}


async def test_leaving_a_server_purges_it(world: World, tiny_checkpoint_path: Path) -> None:
    await opt_in_channel(world)
    await world.fake.send_message(world.channel, world.member, "soon gone")
    await flushed(world)
    model = await world.services.models.install(world.guild.id, tiny_checkpoint_path)
    assert model.path.exists()

    await world.fake.remove_guild(world.guild)

    def purged() -> bool:
        with session_scope(world.services.sessions) as session:
            server = session.get(tables.Server, world.guild.id)
        return server is None and not model.path.exists()

    await world.fake.wait_for(purged, timeout_s=10, what="the purge")
    assert stored(world) == {}
