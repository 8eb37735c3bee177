"""The fake against a real discord.py 2.x bot defined here: connect, commands, events."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from tests.fakediscord import (
    CallbackType,
    FakeDiscord,
    FakeGuild,
    InvalidInvocation,
    MessageKind,
    Permission,
    run_bot,
)


@dataclass
class Seen:
    """What the test bot observed, for assertions."""

    messages: list[discord.Message] = field(default_factory=list)
    edits: list[discord.RawMessageUpdateEvent] = field(default_factory=list)
    deletes: list[discord.RawMessageDeleteEvent] = field(default_factory=list)
    bulk_deletes: list[discord.RawBulkMessageDeleteEvent] = field(default_factory=list)
    removed_guilds: list[int] = field(default_factory=list)
    joined_guilds: list[int] = field(default_factory=list)
    deleted_channels: list[int] = field(default_factory=list)
    deleted_threads: list[discord.RawThreadDeleteEvent] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)


class RegenerateView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(
        label="Regenerate",
        custom_id="test:regenerate",
        emoji="\N{ANTICLOCKWISE DOWNWARDS AND UPWARDS OPEN CIRCLE ARROWS}",
    )
    async def regenerate(
        self, interaction: discord.Interaction, button: discord.ui.Button[RegenerateView]
    ) -> None:
        await interaction.response.edit_message(
            content=f"regenerated for {interaction.user.name}",
            view=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )


class ArchitectureView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.select(
        custom_id="test:arch",
        options=[
            discord.SelectOption(label="GRU", value="gru"),
            discord.SelectOption(label="LSTM", value="lstm"),
        ],
    )
    async def choose(
        self, interaction: discord.Interaction, select: discord.ui.Select[ArchitectureView]
    ) -> None:
        await interaction.response.send_message(f"picked {select.values[0]}", ephemeral=True)


def make_bot(seen: Seen, *, message_content: bool = True) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = message_content
    bot = commands.Bot(command_prefix=commands.when_mentioned, intents=intents)
    quiet = discord.AllowedMentions.none()

    @bot.tree.command(description="Answer with the text")
    @app_commands.describe(text="what to echo", times="how often")
    async def ping(
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, 50],
        times: app_commands.Range[int, 1, 3] = 1,
    ) -> None:
        await interaction.response.send_message(f"pong {text}" * times, allowed_mentions=quiet)

    @bot.tree.command(description="Defer, then edit")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="done slowly", allowed_mentions=quiet)

    @bot.tree.command(description="Defer, then edit in a burst")
    @app_commands.default_permissions(manage_guild=True)
    async def burst(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        for step in range(4):
            await interaction.edit_original_response(content=f"step {step}", allowed_mentions=quiet)

    @bot.tree.command(description="A followup with a file")
    async def export(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send(
            "here",
            file=discord.File(io.BytesIO(b'{"a": 1}'), "export.json"),
            ephemeral=True,
            allowed_mentions=quiet,
        )

    @bot.tree.command(description="Message with a button")
    async def choose(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "pick", view=RegenerateView(), allowed_mentions=quiet
        )

    @bot.tree.command(description="Message with a select menu")
    async def arch(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("which?", view=ArchitectureView())

    @bot.tree.command(description="Long output as a file, then replaced")
    async def long(interaction: discord.Interaction) -> None:
        text = io.BytesIO(b"x" * 3000)
        await interaction.response.send_message(
            "too long", file=discord.File(text, "out.txt"), allowed_mentions=quiet
        )
        await interaction.edit_original_response(
            attachments=[discord.File(io.BytesIO(b"y"), "v2.txt")], allowed_mentions=quiet
        )

    @bot.tree.command(description="Direct-message the caller")
    async def dm(interaction: discord.Interaction) -> None:
        await interaction.user.send("your data", allowed_mentions=quiet)
        await interaction.response.send_message("sent", ephemeral=True)

    corpus = app_commands.Group(name="corpus", description="Corpus admin")

    @corpus.command(name="upload", description="Upload text")
    async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
        data = await file.read()
        seen.uploads.append(data)
        await interaction.response.send_message(
            f"{file.filename}: {len(data)} bytes", allowed_mentions=quiet
        )

    @corpus.command(name="channel-add", description="Collect a channel")
    @app_commands.default_permissions(manage_guild=True)
    async def channel_add(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        allowed = interaction.permissions.manage_guild
        await interaction.response.send_message(
            f"added {channel.name}" if allowed else "needs Manage Server",
            ephemeral=not allowed,
            allowed_mentions=quiet,
        )

    bot.tree.add_command(corpus)

    @bot.event
    async def setup_hook() -> None:
        await bot.tree.sync()

    @bot.event
    async def on_message(message: discord.Message) -> None:
        seen.messages.append(message)

    @bot.event
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        seen.edits.append(payload)

    @bot.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        seen.deletes.append(payload)

    @bot.event
    async def on_raw_bulk_message_delete(payload: discord.RawBulkMessageDeleteEvent) -> None:
        seen.bulk_deletes.append(payload)

    @bot.event
    async def on_guild_remove(guild: discord.Guild) -> None:
        seen.removed_guilds.append(guild.id)

    @bot.event
    async def on_guild_join(guild: discord.Guild) -> None:
        seen.joined_guilds.append(guild.id)

    @bot.event
    async def on_guild_channel_delete(channel: discord.abc.GuildChannel) -> None:
        seen.deleted_channels.append(channel.id)

    @bot.event
    async def on_raw_thread_delete(payload: discord.RawThreadDeleteEvent) -> None:
        seen.deleted_threads.append(payload)

    return bot


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    seen: Seen


@pytest.fixture
def world(fake_discord: FakeDiscord) -> World:
    guild = fake_discord.add_guild("Parrot Test Server")
    fake_discord.add_text_channel(guild, "general")
    return World(fake_discord, guild, Seen())


async def test_connects_identifies_and_sees_the_guild(world: World) -> None:
    fake = world.fake
    async with run_bot(make_bot(world.seen), fake) as bot:
        assert [g.id for g in bot.guilds] == [world.guild.id]
        assert bot.user is not None and bot.user.id == fake.bot_user.id
        assert bot.application_id == fake.application_id
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.get_channel(next(iter(world.guild.channels))) is not None
        identify = fake.gateway.identify_payloads[0]
        assert identify["token"] == fake.token
        assert identify["intents"] & (1 << 15)  # message content
        assert fake.gateway.sessions[0].compress  # discord.py asked for zlib-stream
        await fake.wait_for(lambda: fake.gateway.sessions[0].heartbeats >= 1, what="a heartbeat")


async def test_command_sync_is_recorded(world: World) -> None:
    async with run_bot(make_bot(world.seen), world.fake):
        ping = world.fake.registered_command("ping")
        assert ping is not None
        assert [(o["name"], o["type"], o.get("required", False)) for o in ping["options"]] == [
            ("text", 3, True),
            ("times", 4, False),
        ]
        corpus = world.fake.registered_command("corpus")
        assert corpus is not None
        assert {o["name"] for o in corpus["options"]} == {"upload", "channel-add"}
        assert corpus["default_member_permissions"] is None
        burst = world.fake.registered_command("burst")
        assert burst is not None and burst["default_member_permissions"] == "32"  # a string
        assert len(world.fake.requests_to("PUT", "/applications/")) == 1


async def test_slash_command_round_trip(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    alice = fake.add_user("alice")
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(
            world.guild, channel, alice, "ping", {"text": "hi", "times": 2}
        )
        response = await interaction.wait_response()
        assert response["type"] == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
        assert response["data"]["content"] == "pong hipong hi"
        assert interaction.content == "pong hipong hi"
        assert interaction.response_latency is not None
        [sent] = fake.messages_sent(MessageKind.INTERACTION_RESPONSE)
        assert sent.allowed_mentions == {"parse": []}
        assert not fake.pings(sent).anyone


async def test_option_constraints_follow_the_registered_command(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    alice = fake.add_user("alice")
    async with run_bot(make_bot(world.seen), fake):
        with pytest.raises(InvalidInvocation, match="length 51"):
            await fake.invoke_slash(world.guild, channel, alice, "ping", {"text": "x" * 51})
        with pytest.raises(InvalidInvocation, match="no option 'txt'"):
            await fake.invoke_slash(world.guild, channel, alice, "ping", {"txt": "x"})
        with pytest.raises(InvalidInvocation, match="never registered"):
            await fake.invoke_slash(world.guild, channel, alice, "nope")


async def test_defer_then_edit(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(world.guild, channel, fake.add_user("bob"), "slow")
        assert (await interaction.wait_response())[
            "type"
        ] == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        edit = await interaction.wait_edit()
        assert edit.content == "done slowly"
        assert interaction.content == "done slowly"


async def test_followup_with_a_file(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(
            world.guild, channel, fake.add_user("carol"), "export"
        )
        await interaction.wait_response()
        assert interaction.ephemeral
        followup = await interaction.wait_followup()
        assert followup.ephemeral
        [file] = followup.files
        assert (file.filename, file.data) == ("export.json", b'{"a": 1}')
        message = fake.messages[followup.message_id or 0]
        assert message["attachments"][0]["filename"] == "export.json"


async def test_button_click_updates_the_message(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    dave = fake.add_user("dave")
    async with run_bot(make_bot(world.seen), fake):
        command = await fake.invoke_slash(world.guild, channel, dave, "choose")
        await command.wait_response()
        assert fake.buttons(command) == {"Regenerate": "test:regenerate"}
        click = await fake.click_button(command, dave, label="Regenerate")
        assert (await click.wait_response())["type"] == CallbackType.UPDATE_MESSAGE
        assert command.content == "regenerated for dave"
        assert command.original_message is not None and command.original_message["components"] == []
        with pytest.raises(InvalidInvocation, match="no component"):
            await fake.click_button(command, dave, "test:regenerate")


async def test_attachment_option_is_readable_by_the_bot(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(
            world.guild,
            channel,
            fake.add_user("erin"),
            "corpus",
            {"file": ("story.txt", b"Once upon a time")},
            subcommand="upload",
        )
        await interaction.wait_response()
        assert world.seen.uploads == [b"Once upon a time"]
        assert interaction.content == "story.txt: 16 bytes"


async def test_member_permissions_reach_the_command(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    admin = fake.add_user("admin")
    fake.add_member(world.guild, admin, permissions=Permission.MANAGE_GUILD)
    async with run_bot(make_bot(world.seen), fake):
        allowed = await fake.invoke_slash(
            world.guild, channel, admin, "corpus", {"channel": channel}, subcommand="channel-add"
        )
        refused = await fake.invoke_slash(
            world.guild,
            channel,
            fake.add_user("pleb"),
            "corpus",
            {"channel": channel},
            subcommand="channel-add",
        )
        await allowed.wait_response()
        await refused.wait_response()
        assert allowed.content == "added general"
        assert refused.content == "needs Manage Server" and refused.ephemeral


async def test_message_create_update_and_delete_reach_the_bot(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    frank = fake.add_user("frank")
    async with run_bot(make_bot(seen), fake):
        message = await fake.send_message(channel, frank, "hello parrot")
        await fake.wait_for(lambda: len(seen.messages) == 1, what="on_message")
        assert seen.messages[0].content == "hello parrot"
        assert seen.messages[0].author.id == frank.id

        await fake.edit_message(message, "hello again")
        await fake.wait_for(lambda: len(seen.edits) == 1, what="on_raw_message_edit")
        assert seen.edits[0].data["content"] == "hello again"

        await fake.delete_message(message)
        await fake.wait_for(lambda: len(seen.deletes) == 1, what="on_raw_message_delete")
        assert seen.deletes[0].message_id == int(message["id"])

        # A purge of messages the bot never cached still arrives as a raw event.
        await fake.delete_messages(channel, [111, 222])
        await fake.wait_for(lambda: len(seen.bulk_deletes) == 1, what="on_raw_bulk_message_delete")
        assert seen.bulk_deletes[0].message_ids == {111, 222}


async def test_without_message_content_intent_content_is_empty(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(seen, message_content=False), fake):
        await fake.send_message(channel, fake.add_user("gina"), "secret words")
        await fake.send_message(channel, fake.add_user("hal"), f"{fake.bot_user.mention} hi")
        await fake.wait_for(lambda: len(seen.messages) == 2, what="two messages")
        assert seen.messages[0].content == ""
        assert seen.messages[1].content.endswith(" hi")


async def test_guild_delete_reaches_on_guild_remove(world: World) -> None:
    fake = world.fake
    async with run_bot(make_bot(world.seen), fake) as bot:
        await fake.remove_guild(world.guild)
        await fake.wait_for(
            lambda: world.seen.removed_guilds == [world.guild.id], what="on_guild_remove"
        )
        assert bot.get_guild(world.guild.id) is None


async def test_channel_and_thread_deletes_reach_the_bot(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    doomed = fake.add_text_channel(world.guild, "doomed")
    message = fake.seed_message(doomed, fake.add_user("kim"), "in a channel about to go")
    thread_id = fake.ids.next_id()
    async with run_bot(make_bot(world.seen), fake) as bot:
        await fake.delete_channel(doomed)
        await fake.wait_for(lambda: world.seen.deleted_channels == [doomed.id], what="delete")
        assert bot.get_channel(doomed.id) is None and bot.get_channel(channel.id) is not None
        assert doomed.id not in world.guild.channels and int(message["id"]) not in fake.messages
        await fake.delete_thread(channel, thread_id)
        await fake.wait_for(lambda: len(world.seen.deleted_threads) == 1, what="thread delete")
        [raw] = world.seen.deleted_threads
        assert (raw.thread_id, raw.guild_id, raw.parent_id) == (
            thread_id,
            world.guild.id,
            channel.id,
        )
        assert raw.thread_type == discord.ChannelType.public_thread


async def test_changes_while_offline_show_at_the_next_ready(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    other = fake.add_guild("Other server")
    doomed = fake.add_text_channel(other, "doomed")
    async with run_bot(make_bot(world.seen), fake):
        pass
    await fake.wait_until_disconnected()
    await fake.remove_guild(world.guild)
    await fake.delete_channel(doomed)
    async with run_bot(make_bot(world.seen), fake) as bot:
        assert [g.id for g in bot.guilds] == [other.id]
        assert bot.get_channel(doomed.id) is None and bot.get_channel(channel.id) is None
    # Nothing was sent for them: the bot was not connected.
    assert world.seen.removed_guilds == [] and world.seen.deleted_channels == []


async def test_bot_leaving_a_guild_is_recorded(world: World) -> None:
    fake = world.fake
    async with run_bot(make_bot(world.seen), fake) as bot:
        guild = bot.get_guild(world.guild.id)
        assert guild is not None
        await guild.leave()
        assert fake.left_guild_ids == [world.guild.id]
        await fake.wait_for(
            lambda: world.seen.removed_guilds == [world.guild.id], what="on_guild_remove"
        )


async def test_channel_messages_and_edits_are_recorded(world: World) -> None:
    fake = world.fake
    channel_id = next(iter(world.guild.channels))
    async with run_bot(make_bot(world.seen), fake) as bot:
        channel = bot.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        async with channel.typing():
            sent = await channel.send(
                "hi <@123> @everyone", file=discord.File(io.BytesIO(b"abc"), "a.txt")
            )
        await sent.edit(content="edited", allowed_mentions=discord.AllowedMentions.none())
        created, edited = fake.messages_sent()
        assert (
            created.kind == MessageKind.CHANNEL_MESSAGE and edited.kind == MessageKind.CHANNEL_EDIT
        )
        assert created.files[0].data == b"abc"
        # No allowed_mentions on the send: on real Discord it would ping everyone.
        assert fake.pings(created).everyone and not fake.pings(edited).anyone
        fetched = await channel.fetch_message(sent.id)
        assert fetched.content == "edited"
        assert len(fetched.attachments) == 1 and await fetched.attachments[0].read() == b"abc"


async def test_missing_permission_is_refused_like_discord(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.bot_permissions = Permission.VIEW_CHANNEL
    guild = fake.add_guild()
    guild.everyone_role.permissions = Permission.VIEW_CHANNEL
    channel_id = fake.add_text_channel(guild).id
    async with run_bot(make_bot(Seen()), fake) as bot:
        channel = bot.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.Forbidden):
            await channel.send("hello")


async def test_invalid_request_is_caught_by_the_openapi_validator(world: World) -> None:
    fake = world.fake
    channel_id = next(iter(world.guild.channels))
    async with run_bot(make_bot(world.seen), fake) as bot:
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        with pytest.raises(discord.HTTPException, match="Invalid Form Body"):
            await bot.http.request(
                route, json={"content": 42, "allowed_mentions": {"parse": ["nobody"]}}
            )
        with pytest.raises(discord.NotFound):
            await bot.http.request(Route("GET", "/definitely/not/discord"))
    violations = fake.take_spec_violations()
    assert [v.path for v in violations] == [
        f"/channels/{channel_id}/messages",
        "/definitely/not/discord",
    ]
    assert "content" in violations[0].problem or "allowed_mentions" in violations[0].problem
    assert [r.path for r in fake.take_unexpected_requests()] == ["/definitely/not/discord"]


async def test_auto_sharded_bot_gets_each_guild_on_its_shard(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guilds = [fake.add_guild(f"server {i}") for i in range(4)]
    intents = discord.Intents.default()
    bot = commands.AutoShardedBot(command_prefix="!", intents=intents, shard_count=2)
    async with run_bot(bot, fake):
        assert {g.id for g in bot.guilds} == {g.id for g in guilds}
        assert sorted(s["shard"] for s in fake.gateway.identify_payloads) == [[0, 2], [1, 2]]
        for guild in bot.guilds:
            assert guild.shard_id == (guild.id >> 22) % 2


async def test_resume_after_reconnect_request(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(seen), fake):
        await fake.reconnect_gateway()
        await fake.wait_for(
            lambda: bool(fake.gateway.resumes) and bool(fake.gateway.sessions), what="RESUME"
        )
        await fake.send_message(channel, fake.add_user("ivy"), "after resume")
        await fake.wait_for(
            lambda: [m.content for m in seen.messages] == ["after resume"], what="message"
        )


async def test_callback_with_a_file_then_edit_replacing_it(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(world.guild, channel, fake.add_user("jo"), "long")
        response = await interaction.wait_response()
        assert response["data"]["content"] == "too long"
        [response_sent] = fake.messages_sent(MessageKind.INTERACTION_RESPONSE)
        assert [(f.filename, len(f.data)) for f in response_sent.files] == [("out.txt", 3000)]
        await interaction.wait_edit()
        message = interaction.original_message
        assert message is not None
        assert [a["filename"] for a in message["attachments"]] == ["v2.txt"]


async def test_direct_message(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    kim = fake.add_user("kim")
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(world.guild, channel, kim, "dm")
        await interaction.wait_response()
        [dm] = fake.channel_messages(fake.dm_channel(kim))
        assert dm["content"] == "your data"


async def test_reaction_on_a_user_message(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake) as bot:
        message = await fake.send_message(channel, fake.add_user("lee"), "react to me")
        await fake.wait_for(lambda: len(world.seen.messages) == 1, what="on_message")
        await world.seen.messages[0].add_reaction("\N{WHITE HEAVY CHECK MARK}")
        assert message["reactions"] == [
            {"emoji": {"id": None, "name": "\N{WHITE HEAVY CHECK MARK}"}, "count": 1, "me": True}
        ]
        assert bot.user is not None


async def test_guild_scoped_command_sync(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    channel = fake.add_text_channel(guild)
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())

    @bot.tree.command(description="hi", guild=discord.Object(guild.id))
    async def hello(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("hello")

    async with run_bot(bot, fake):
        await bot.tree.sync(guild=discord.Object(guild.id))
        assert fake.global_commands == []
        assert [c["name"] for c in fake.guild_commands[guild.id]] == ["hello"]
        interaction = await fake.invoke_slash(guild, channel, fake.add_user("mo"), "hello")
        assert interaction.payload["data"]["guild_id"] == str(guild.id)
        assert (await interaction.wait_response())["data"]["content"] == "hello"


async def test_many_concurrent_interactions_are_each_answered(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    users = [fake.add_user(f"user{i}") for i in range(30)]
    async with run_bot(make_bot(world.seen), fake):
        handles = await asyncio.gather(
            *(
                fake.invoke_slash(world.guild, channel, user, "ping", {"text": user.name})
                for user in users
            )
        )
        await fake.wait_for(
            lambda: all(h.callbacks for h in handles), timeout_s=10, what="30 callbacks"
        )
        assert sorted(h.content or "" for h in handles) == sorted(f"pong {u.name}" for u in users)
        assert all(h.response_latency is not None for h in handles)


async def test_late_acknowledgement_fails_like_discord() -> None:
    async with FakeDiscord(ack_deadline_s=0.0) as fake:
        guild = fake.add_guild()
        channel = fake.add_text_channel(guild)
        async with run_bot(make_bot(Seen()), fake):
            interaction = await fake.invoke_slash(
                guild, channel, fake.add_user("ned"), "ping", {"text": "x"}
            )
            await fake.wait_for(lambda: interaction.acknowledged_late, what="the late callback")
        assert interaction.callbacks == []
        assert any("acknowledged after" in problem for problem in fake.problems())


async def test_expired_interaction_token_is_refused(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(world.seen), fake) as bot:
        interaction = await fake.invoke_slash(world.guild, channel, fake.add_user("oz"), "slow")
        await interaction.wait_edit()
        fake.expire_interaction(interaction)
        route = Route(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            webhook_id=fake.application_id,
            webhook_token=interaction.token,
        )
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.request(route, json={"content": "too late"})
        assert (refused.value.status, refused.value.code) == (401, 50027)


async def test_content_over_the_bot_limit_is_refused(world: World) -> None:
    fake = world.fake
    channel_id = next(iter(world.guild.channels))
    async with run_bot(make_bot(world.seen), fake) as bot:
        channel = bot.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException, match="Discord allows bots 2000"):
            await channel.send("x" * 2001)
    [violation] = fake.take_spec_violations()
    assert "2001 characters" in violation.problem


async def test_edit_and_history_of_a_message_from_before_the_bot_connected(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    old = fake.seed_message(channel, fake.add_user("pat"), "written yesterday")
    async with run_bot(make_bot(seen), fake) as bot:
        await fake.edit_message(old, "edited today")
        await fake.wait_for(lambda: len(seen.edits) == 1, what="raw edit")
        assert seen.edits[0].cached_message is None
        assert seen.edits[0].message_id == int(old["id"])
        text_channel = bot.get_channel(channel.id)
        assert isinstance(text_channel, discord.TextChannel)
        assert [m.content async for m in text_channel.history(limit=10)] == ["edited today"]


async def test_mentions_and_replies_reach_the_bot(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    quinn = fake.add_user("quinn")
    async with run_bot(make_bot(seen), fake) as bot:
        interaction = await fake.invoke_slash(world.guild, channel, quinn, "ping", {"text": "x"})
        await interaction.wait_response()
        await fake.send_message(channel, quinn, f"{fake.bot_user.mention} tell me more")
        await fake.send_message(channel, quinn, "and then?", reply_to=interaction)
        await fake.wait_for(
            lambda: len([m for m in seen.messages if m.author.id == quinn.id]) == 2,
            what="2 messages",
        )
        mention, reply = [m for m in seen.messages if m.author.id == quinn.id]
        assert bot.user is not None and bot.user.mentioned_in(mention)
        assert (
            reply.reference is not None
            and reply.reference.message_id == interaction.original_message_id
        )
        assert isinstance(reply.reference.resolved, discord.Message)
        assert reply.reference.resolved.author.id == fake.bot_user.id


async def test_bot_messages_and_nsfw_channels_look_right(world: World) -> None:
    fake = world.fake
    seen = world.seen
    nsfw = fake.add_text_channel(world.guild, "after-dark", nsfw=True)
    other_bot = fake.add_user("otherbot", bot=True)
    async with run_bot(make_bot(seen), fake) as bot:
        channel = bot.get_channel(nsfw.id)
        assert isinstance(channel, discord.TextChannel) and channel.is_nsfw()
        await fake.send_message(nsfw, other_bot, "beep")
        await fake.wait_for(lambda: len(seen.messages) == 1, what="bot message")
        assert seen.messages[0].author.bot


async def test_joining_a_guild_after_ready(world: World) -> None:
    fake = world.fake
    async with run_bot(make_bot(world.seen), fake) as bot:
        later = fake.add_guild("Joined later")
        fake.add_text_channel(later)
        await fake.join_guild(later)
        await fake.wait_for(lambda: world.seen.joined_guilds == [later.id], what="on_guild_join")
        assert bot.get_guild(later.id) is not None
        extra = fake.add_text_channel(world.guild, "added-later")
        await fake.announce_channel(extra)
        await fake.wait_for(lambda: bot.get_channel(extra.id) is not None, what="CHANNEL_CREATE")
        refreshed = fake.add_text_channel(world.guild, "via-refresh")
        await fake.join_guild(world.guild)  # known guild: a refresh, not a join
        await fake.wait_for(lambda: bot.get_channel(refreshed.id) is not None, what="GUILD_CREATE")
        assert world.seen.joined_guilds == [later.id]


async def test_opt_in_rate_limit_makes_discord_py_wait_and_retry(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    template = "/webhooks/{app_id}/{token}/messages/@original"
    fake.rate_limits.add("PATCH", template, limit=1, per_s=0.5)
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(world.guild, channel, fake.add_user("rae"), "burst")
        await interaction.wait_edit(lambda edit: edit.content == "step 3")
        assert [edit.content for edit in interaction.edits] == [f"step {i}" for i in range(4)]
        assert fake.rate_limits.limited  # the burst was slowed down, not lost


async def test_raw_http_problems_are_recorded(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bot {fake.token}", "User-Agent": "curl/8"}
        async with session.get(f"{fake.api_base}/users/@me", headers=headers) as response:
            assert response.status == 200
        async with session.get(
            f"{fake.api_base}/users/@me", headers={"Authorization": "Bot wrong"}
        ) as response:
            assert response.status == 401
        async with session.get(f"{fake.base_url}/favicon.ico") as response:
            assert response.status == 404
    assert ["bad User-Agent" in v.problem for v in fake.take_spec_violations()] == [True, True]
    assert [r.path for r in fake.take_unexpected_requests()] == ["/favicon.ico"]


async def test_auto_sharded_bot_without_shard_count_asks_gateway_bot(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    bot = commands.AutoShardedBot(command_prefix="!", intents=discord.Intents.default())
    async with run_bot(bot, fake):
        assert [g.id for g in bot.guilds] == [guild.id]
        assert len(fake.requests_to("GET", "/gateway/bot")) == 1
        assert fake.gateway.identify_payloads[0]["shard"] == [0, 1]


async def test_member_chunk_requests_are_answered(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guild = fake.add_guild()
    for name in ("sam", "sally", "tom"):
        fake.add_member(guild, fake.add_user(name))
    intents = discord.Intents.default()
    intents.members = True
    bot = commands.Bot(command_prefix="!", intents=intents, chunk_guilds_at_startup=False)
    async with run_bot(bot, fake):
        found = bot.get_guild(guild.id)
        assert found is not None
        members = await found.query_members("sa")
        assert sorted(m.name for m in members) == ["sally", "sam"]
        assert sorted(m.name for m in await found.chunk()) == sorted(
            m.user.name for m in guild.members.values()
        )


async def test_heartbeats_are_acknowledged() -> None:
    async with FakeDiscord(heartbeat_interval_ms=20) as fake:
        fake.add_guild()
        async with run_bot(
            commands.Bot(command_prefix="!", intents=discord.Intents.default()), fake
        ) as bot:
            await fake.wait_for(
                lambda: fake.gateway.sessions[0].heartbeats >= 3, what="3 heartbeats"
            )
            assert bot.latency != float("inf")  # an ACK came back
        assert fake.problems() == []


async def test_channel_overwrites_apply_to_the_bot_and_to_members(world: World) -> None:
    fake = world.fake
    seen = world.seen
    general = next(iter(world.guild.channels.values()))
    read_only = fake.add_text_channel(world.guild, "announcements")
    hidden = fake.add_text_channel(world.guild, "staff")
    fake.set_permission_overwrite(read_only, fake.bot_user, deny=Permission.SEND_MESSAGES)
    fake.set_permission_overwrite(hidden, world.guild.everyone_role, deny=Permission.VIEW_CHANNEL)
    uma = fake.add_user("uma")
    async with run_bot(make_bot(seen), fake) as bot:
        guild = bot.get_guild(world.guild.id)
        assert guild is not None
        channel = guild.get_channel(read_only.id)
        assert isinstance(channel, discord.TextChannel)
        assert not channel.permissions_for(guild.me).send_messages  # discord.py agrees
        with pytest.raises(discord.Forbidden):
            await channel.send("nope")

        await fake.send_message(hidden, uma, "the bot cannot see this")
        await fake.send_message(general, uma, "but this")
        await fake.wait_for(lambda: len(seen.messages) == 1, what="the visible message")
        assert seen.messages[0].content == "but this"

        interaction = await fake.invoke_slash(world.guild, hidden, uma, "ping", {"text": "x"})
        assert int(interaction.payload["member"]["permissions"]) == 0
        assert int(interaction.payload["app_permissions"]) == 0
        await interaction.wait_response()


async def test_dropped_connection_is_resumed(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(seen), fake):
        await fake.drop_connections()
        await fake.wait_for(
            lambda: bool(fake.gateway.resumes) and bool(fake.gateway.sessions),
            timeout_s=10,
            what="RESUME",
        )
        await fake.send_message(channel, fake.add_user("val"), "still here")
        await fake.wait_for(
            lambda: [m.content for m in seen.messages] == ["still here"], what="message"
        )


async def test_select_menu_choice(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    wes = fake.add_user("wes")
    async with run_bot(make_bot(world.seen), fake):
        command = await fake.invoke_slash(world.guild, channel, wes, "arch")
        await command.wait_response()
        choice = await fake.choose_options(command, wes, "test:arch", ["lstm"])
        response = await choice.wait_response()
        assert response["type"] == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
        assert choice.content == "picked lstm" and choice.ephemeral
        assert command.content == "which?"  # a new message, the menu's message is unchanged


async def test_bot_replies_are_stored_as_replies(world: World) -> None:
    fake = world.fake
    seen = world.seen
    channel = next(iter(world.guild.channels.values()))
    async with run_bot(make_bot(seen), fake):
        original = await fake.send_message(
            channel, fake.add_user("xena"), f"{fake.bot_user.mention} hi"
        )
        await fake.wait_for(lambda: len(seen.messages) == 1, what="on_message")
        await seen.messages[0].reply("hello back", mention_author=False)
        [sent] = fake.messages_sent(MessageKind.CHANNEL_MESSAGE)
        reply = fake.messages[sent.message_id or 0]
        assert reply["message_reference"]["message_id"] == original["id"]
        assert reply["referenced_message"]["id"] == original["id"]
        assert sent.allowed_mentions is not None and sent.allowed_mentions["replied_user"] is False


async def test_fetch_routes_return_objects_shaped_like_discords(world: World) -> None:
    fake = world.fake
    channel = next(iter(world.guild.channels.values()))
    yan = fake.add_user("yan")
    fake.add_member(world.guild, yan, nick="Y")
    async with run_bot(make_bot(world.seen), fake) as bot:
        guild = await bot.fetch_guild(world.guild.id)
        assert guild.name == world.guild.name
        member = await guild.fetch_member(yan.id)
        assert member.nick == "Y"
        fetched_channel = await bot.fetch_channel(channel.id)
        assert fetched_channel.id == channel.id
        assert (await bot.fetch_user(yan.id)).name == "yan"
        assert [c.id for c in await guild.fetch_channels()] == [channel.id]
        commands_seen = await bot.tree.fetch_commands()
        assert "ping" in {c.name for c in commands_seen}
    # The fixture fails the test if any of these answers broke the spec's response schemas.


async def test_slash_command_in_a_dm(world: World) -> None:
    fake = world.fake
    lee = fake.add_user("lee")
    async with run_bot(make_bot(world.seen), fake):
        interaction = await fake.invoke_slash(
            None, fake.dm_channel(lee), lee, "ping", {"text": "dm"}
        )
        response = await interaction.wait_response()
        assert response["data"]["content"] == "pong dm"
        assert "guild_id" not in interaction.payload and "member" not in interaction.payload
        assert interaction.payload["user"]["id"] == str(lee.id)
        assert interaction.payload["channel"]["type"] == 1
        with pytest.raises(InvalidInvocation):  # a DM command runs in the caller's DM channel
            await fake.invoke_slash(None, next(iter(world.guild.channels.values())), lee, "ping")
