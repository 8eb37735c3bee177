"""Servers and channels gone while the bot was offline, and channels or threads deleted while
it runs: their text leaves the corpus (the real bot against the fake Discord)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.client import ParrotBot
from bot.core.app import build
from bot.core.config import ParrotConfig
from bot.core.services.reconcile import Reconciler, ReconcileReport
from bot.core.storage.corpus import set_channel_collect
from bot.core.storage.db import run_in_session, session_scope
from bot.core.storage.tables import Message, Server
from tests.bot.conftest import TINY_TRAINING, World
from tests.fakediscord import FakeChannel, FakeDiscord, FakeGuild, FakeUser, Permission, run_bot


@pytest.fixture
def quick_config(parrot_config: ParrotConfig) -> ParrotConfig:
    """No grace period: the start-up check runs as soon as every shard is ready."""
    privacy = dataclasses.replace(parrot_config.privacy, reconcile_grace_seconds=0.0)
    return dataclasses.replace(parrot_config, privacy=privacy)


@asynccontextmanager
async def running(fake: FakeDiscord, config: ParrotConfig) -> AsyncIterator[ParrotBot]:
    """A fresh bot process, as after a restart: new services on the same database."""
    bot = ParrotBot(config, services=build(config, train_overrides=TINY_TRAINING))
    async with run_bot(bot, fake):
        yield bot


def reconciler_of(bot: ParrotBot) -> Reconciler:
    # By attribute: discord.py loads the extension as a module of its own, so its CollectCog
    # is not the class this file imports.
    reconciler = getattr(bot.get_cog("Collect"), "reconciler", None)
    assert isinstance(reconciler, Reconciler)
    return reconciler


async def opt_in(
    fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel, admin: FakeUser
) -> None:
    handle = await fake.invoke_slash(
        guild, channel, admin, "corpus", {"channel": channel}, subcommand="channel-add"
    )
    await handle.wait_response(timeout_s=30)


async def collect(
    bot: ParrotBot, fake: FakeDiscord, channel: FakeChannel, author: FakeUser
) -> None:
    """Two messages in `channel`, stored (not left in the buffer)."""
    before = len(stored(bot))
    for text in (f"hello from {channel.name}", f"more from {channel.name}"):
        await fake.send_message(channel, author, text)
    await fake.wait_for(
        lambda: bot.services.collection.buffer.pending + len(stored(bot)) >= before + 2,
        timeout_s=10,
        what=f"messages from {channel.name}",
    )
    await bot.services.collection.buffer.flush()


def stored(bot: ParrotBot) -> dict[int, tuple[int, int]]:
    """Stored message id -> (server id, channel id)."""
    with session_scope(bot.services.sessions) as session:
        rows = session.execute(select(Message.id, Message.server_id, Message.channel_id))
        return {message_id: (server, channel) for message_id, server, channel in rows}


def channels_with_text(bot: ParrotBot) -> set[int]:
    return {channel for _server, channel in stored(bot).values()}


def server_ids(bot: ParrotBot) -> set[int]:
    with session_scope(bot.services.sessions) as session:
        return set(session.scalars(select(Server.id)))


async def test_servers_and_channels_gone_while_offline_are_purged_at_start_up(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig, quick_config: ParrotConfig
) -> None:
    fake = fake_discord
    admin, member = fake.add_user("admin"), fake.add_user("member")
    leaving, staying = (
        fake.add_guild("Leaving", owner=admin),
        fake.add_guild("Staying", owner=admin),
    )
    left_channel = fake.add_text_channel(leaving, "left-behind")
    doomed, kept = fake.add_text_channel(staying, "doomed"), fake.add_text_channel(staying, "kept")
    for guild in (leaving, staying):
        fake.add_member(guild, member)
        fake.add_member(guild, admin, permissions=Permission.MANAGE_GUILD)

    # The default grace period: nothing is checked before this bot stops, and it stops promptly.
    async with running(fake, parrot_config) as bot:
        for guild, channel in ((leaving, left_channel), (staying, doomed), (staying, kept)):
            await opt_in(fake, guild, channel, admin)
            await collect(bot, fake, channel, member)
        assert channels_with_text(bot) == {left_channel.id, doomed.id, kept.id}
        assert reconciler_of(bot).runs == 0

    # While it is down: removed from one server, a channel of the other deleted.
    await fake.wait_until_disconnected()
    await fake.remove_guild(leaving)
    await fake.delete_channel(doomed)

    async with running(fake, quick_config) as bot:
        reconciler = reconciler_of(bot)
        await fake.wait_for(lambda: reconciler.runs == 1, timeout_s=30, what="the start-up check")
        report = reconciler.last_report
        assert report is not None
        assert report.servers_removed == (leaving.id,)
        assert report.channels_purged == ((staying.id, doomed.id),)
        assert report.messages_deleted == 2
        assert server_ids(bot) == {staying.id}
        assert channels_with_text(bot) == {kept.id}
        assert len(stored(bot)) == 2


async def test_a_channel_deleted_while_running_takes_its_messages(world: World) -> None:
    fake, bot = world.fake, world.bot
    kept = fake.add_text_channel(world.guild, "kept")
    await fake.join_guild(world.guild)
    for channel in (world.channel, kept):
        await opt_in(fake, world.guild, channel, world.admin)
        await collect(bot, fake, channel, world.member)
    # One more still in the buffer when the channel goes: it must not be stored afterwards.
    await fake.send_message(world.channel, world.member, "buffered, then deleted")
    await fake.wait_for(lambda: bot.services.collection.buffer.pending >= 1, what="buffering")

    await fake.delete_channel(world.channel)
    await fake.wait_for(
        lambda: world.channel.id not in channels_with_text(bot), timeout_s=10, what="the purge"
    )
    await bot.services.collection.buffer.flush()
    assert channels_with_text(bot) == {kept.id}
    assert len(stored(bot)) == 2


async def test_a_thread_deleted_while_running_takes_its_messages(world: World) -> None:
    fake, services = world.fake, world.services
    await opt_in(fake, world.guild, world.channel, world.admin)
    await collect(world.bot, fake, world.channel, world.member)
    # The fake does not model threads: store the thread's messages as collection would.
    thread_id = fake.ids.next_id()
    for _ in range(2):
        await services.collection.collect_message(
            world.guild.id,
            message_id=fake.ids.next_id(),
            channel_id=thread_id,
            author_id=world.member.id,
            content="said in a thread",
            created_at=datetime.now(UTC),
            settings_channel_id=world.channel.id,
        )
    await services.collection.buffer.flush()
    assert channels_with_text(world.bot) == {world.channel.id, thread_id}

    await fake.delete_thread(world.channel, thread_id)
    await fake.wait_for(
        lambda: channels_with_text(world.bot) == {world.channel.id},
        timeout_s=10,
        what="the thread's purge",
    )


async def test_the_start_up_check_runs_once_per_ready_not_per_resume(
    fake_discord: FakeDiscord, quick_config: ParrotConfig
) -> None:
    fake = fake_discord
    fake.add_text_channel(fake.add_guild("Only"), "general")
    async with running(fake, quick_config) as bot:
        reconciler = reconciler_of(bot)
        await fake.wait_for(lambda: reconciler.runs == 1, timeout_s=30, what="the start-up check")
        await fake.reconnect_gateway()
        await fake.wait_for(
            lambda: len(fake.gateway.resumes) == 1 and bool(fake.gateway.sessions), what="RESUME"
        )
        await fake.drop_connections()
        await fake.wait_for(
            lambda: len(fake.gateway.resumes) == 2 and bool(fake.gateway.sessions), what="RESUME"
        )
        await asyncio.sleep(0.5)  # time for a (wrong) second check to be scheduled and run
        assert len(fake.gateway.identify_payloads) == 1
        assert reconciler.runs == 1


class ShardZeroOfTwo:
    """A process running shard 0 of 2, in `members` only: servers on shard 1 are not its to
    judge, and it cannot tell which channels exist (as for unavailable servers)."""

    def __init__(self, members: set[int]) -> None:
        self.members = members

    def serves(self, server_id: int) -> bool:
        return (server_id >> 22) % 2 == 0

    def is_member(self, server_id: int) -> bool:
        return server_id in self.members

    def has_channel(self, server_id: int, channel_id: int) -> bool | None:
        return None


async def test_only_this_processs_servers_are_judged(world: World) -> None:
    services = world.services
    ours, theirs, member_of = 4 << 22, 5 << 22, 6 << 22  # shards 0, 1 and 0 of 2
    for server_id in (ours, theirs, member_of):
        await run_in_session(
            services.sessions, lambda s, sid=server_id: set_channel_collect(s, sid, 1234, True)
        )
    reconciler = Reconciler(
        services.sessions,
        collection=services.collection,
        privacy=services.privacy,
        grace_seconds=0.0,
    )
    report = await reconciler.reconcile(ShardZeroOfTwo(members={member_of}))
    assert report == ReconcileReport(servers_removed=(ours,))
    assert {theirs, member_of} <= server_ids(world.bot) and ours not in server_ids(world.bot)
