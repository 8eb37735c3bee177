"""`FakeDiscord`: a loopback Discord (REST + gateway) that a real discord.py client talks to.

Build the world (`add_guild`, `add_text_channel`, `add_user`, `add_member`), start the
server, connect a bot with `tests.fakediscord.client.run_bot`, then drive it as users would
(`send_message`, `invoke_slash`, `click_button`, ...) and assert on what it sent
(`messages_sent()`, `InteractionHandle.edits`, `registered_command()`, ...). Every request
is checked against Discord's OpenAPI spec; problems land in `spec_violations`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakediscord.entities import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    HasValue,
    OverwriteType,
    Permission,
    PermissionOverwrite,
    permission_bits,
)
from tests.fakediscord.gateway import GatewayConfig, GatewayServer, GatewaySession, Intent
from tests.fakediscord.interactions import (
    CommandWorld,
    InteractionContext,
    InteractionHandle,
    InteractionType,
    InvalidInvocation,
    build_command_data,
    button_ids,
    find_component,
    wait_until,
)
from tests.fakediscord.mentions import Pings, mentioned_user_ids, pings_of
from tests.fakediscord.messages import StoredAttachment, build_message
from tests.fakediscord.openapi import OpenApiValidator, SpecViolation
from tests.fakediscord.ratelimits import RateLimiter
from tests.fakediscord.records import MessageKind, RecordedRequest, SentMessage
from tests.fakediscord.rest import RestApi
from tests.fakediscord.snowflakes import SnowflakeFactory, iso_now

Payload = dict[str, Any]
MessageRef = Payload | int | SentMessage | InteractionHandle

DEFAULT_TOKEN = "fake.bot.token"  # a test token, not a secret
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


class FakeDiscord:
    """A Discord stand-in on 127.0.0.1; see tests/fakediscord/README.md for a walkthrough."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_name: str = "Parrot",
        spec_path: Path | None = None,
        heartbeat_interval_ms: int = 5_000,
        enabled_privileged_intents: int = Intent.PRIVILEGED,
        bot_permissions: int | HasValue = Permission.BOT_DEFAULT,
        ack_deadline_s: float | None = None,
    ) -> None:
        """`ack_deadline_s=3.0` makes late interaction callbacks fail as on Discord (404
        Unknown interaction) and counts them as problems; off by default because test
        machines are slow and shared."""
        self.ids = SnowflakeFactory()
        self.token = token
        self.application_id = self.ids.next_id()
        # Like a real bot application, the bot user shares the application's id.
        self.bot_user = FakeUser(id=self.application_id, name=bot_name, bot=True)
        self.bot_permissions = permission_bits(bot_permissions)
        self.ack_deadline_s = ack_deadline_s
        self.owner = FakeUser(id=self.ids.next_id(), name="app-owner")

        self.users: dict[int, FakeUser] = {
            self.bot_user.id: self.bot_user,
            self.owner.id: self.owner,
        }
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, Payload] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.global_commands: list[Payload] = []
        self.guild_commands: dict[int, list[Payload]] = {}
        self.interactions: dict[int, InteractionHandle] = {}
        self.left_guild_ids: list[int] = []
        self._announced_guild_ids: set[int] = set()

        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[SpecViolation] = []
        self.unexpected_requests: list[RecordedRequest] = []
        self.internal_errors: list[str] = []
        self.rate_limits = RateLimiter()
        self.sent: list[SentMessage] = []

        self.validator = OpenApiValidator(spec_path)
        self.gateway = GatewayServer(
            GatewayConfig(token, heartbeat_interval_ms, enabled_privileged_intents),
            on_identified=self._send_ready,
            on_member_request=self._send_member_chunk,
            on_change=self.notify_change,
        )
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on a random 127.0.0.1 port."""
        app = web.Application(client_max_size=ATTACHMENT_SIZE_LIMIT * 11)
        rest = RestApi(self)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", rest.serve_attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", rest.handle)
        app.router.add_route("*", "/{tail:.*}", rest.handle_outside_api)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be set to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What `DiscordWebSocket.DEFAULT_GATEWAY` must be set to."""
        return f"ws://127.0.0.1:{self._port}/gateway"

    # ------------------------------------------------------------------ world building

    def add_user(self, name: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        user = FakeUser(id=self.ids.next_id(), name=name, bot=bot, global_name=global_name)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Test Server", *, owner: FakeUser | None = None) -> FakeGuild:
        """A server with @everyone, the bot as a member (with `bot_permissions`) and its owner."""
        owner = owner or self.add_user(f"{name}-owner")
        guild = FakeGuild(id=self.ids.next_id(), name=name, owner_id=owner.id)
        guild.roles[guild.id] = FakeRole(
            id=guild.id,
            guild_id=guild.id,
            name="@everyone",
            permissions=Permission.EVERYONE_DEFAULT,
        )
        self.guilds[guild.id] = guild
        bot_role = self.add_role(guild, self.bot_user.name, self.bot_permissions, managed=True)
        guild.members[self.bot_user.id] = FakeMember(self.bot_user, guild.id, [bot_role.id])
        self.add_member(guild, owner)
        return guild

    def add_role(
        self, guild: FakeGuild, name: str, permissions: int | HasValue, *, managed: bool = False
    ) -> FakeRole:
        role = FakeRole(
            id=self.ids.next_id(),
            guild_id=guild.id,
            name=name,
            permissions=permission_bits(permissions),
            position=len(guild.roles),
            managed=managed,
        )
        guild.roles[role.id] = role
        return role

    def add_text_channel(
        self,
        guild: FakeGuild,
        name: str = "general",
        *,
        nsfw: bool = False,
        topic: str | None = None,
    ) -> FakeChannel:
        channel = FakeChannel(
            id=self.ids.next_id(),
            guild_id=guild.id,
            name=name,
            nsfw=nsfw,
            topic=topic,
            position=len(guild.channels),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def add_member(
        self,
        guild: FakeGuild,
        user: FakeUser,
        *,
        permissions: int | HasValue | None = None,
        roles: Iterable[FakeRole] = (),
        nick: str | None = None,
    ) -> FakeMember:
        """Make `user` a member; `permissions` grants extra bits through a role of its own."""
        role_ids = [role.id for role in roles]
        if permissions is not None:
            role_ids.append(self.add_role(guild, f"{user.name}-perms", permissions).id)
        member = FakeMember(user, guild.id, role_ids, nick=nick)
        guild.members[user.id] = member
        self.users[user.id] = user
        return member

    def set_permission_overwrite(
        self,
        channel: FakeChannel,
        target: FakeRole | FakeUser | FakeMember,
        *,
        allow: int | HasValue = 0,
        deny: int | HasValue = 0,
    ) -> None:
        """Allow/deny bits in one channel for a role (e.g. `guild.everyone_role`) or a member,
        e.g. `set_permission_overwrite(channel, fake.bot_user, deny=Permission.SEND_MESSAGES)`."""
        kind = OverwriteType.ROLE if isinstance(target, FakeRole) else OverwriteType.MEMBER
        channel.overwrites[target.id] = PermissionOverwrite(
            target.id, kind, permission_bits(allow), permission_bits(deny)
        )

    def make_attachment(
        self, filename: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredAttachment:
        """Bytes served by the fake at the attachment's `url` (what `Attachment.read()` fetches)."""
        attachment_id = self.ids.next_id()
        attachment = StoredAttachment(
            id=attachment_id,
            filename=filename,
            content_type=content_type,
            data=data,
            url=f"{self.base_url}/attachments/{attachment_id}/{filename}",
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The bot's DM channel with `user` (created on first use, as Discord does)."""
        for channel in self.channels.values():
            if channel.type == ChannelType.DM and channel.recipient is user:
                return channel
        channel = FakeChannel(
            id=self.ids.next_id(), guild_id=None, name="", type=ChannelType.DM, recipient=user
        )
        self.channels[channel.id] = channel
        return channel

    def member(self, guild: FakeGuild, user: FakeUser | FakeMember) -> FakeMember:
        """The user's membership, joining them (no extra permissions) if needed."""
        if isinstance(user, FakeMember):
            return user
        return guild.members.get(user.id) or self.add_member(guild, user)

    # ------------------------------------------------------------------ gateway

    async def wait_until_connected(self, timeout_s: float = 10.0) -> None:
        """Until every shard identified and got READY + its GUILD_CREATEs."""

        def all_connected() -> bool:
            sessions = self.gateway.sessions
            return bool(sessions) and len(sessions) == sessions[0].shard_count

        await self.wait_for(all_connected, timeout_s, what="gateway IDENTIFY from every shard")

    async def dispatch(self, event: str, data: Any, *, guild_id: int | None = None) -> None:
        """Send a raw gateway event to the shard that owns `guild_id` (shard 0 if None)."""
        for session in self._sessions_for(guild_id):
            await session.dispatch(event, data)

    async def join_guild(self, guild: FakeGuild) -> None:
        """GUILD_CREATE after READY. For a guild the bot has not seen, it was just invited
        (`on_guild_join`); for one it has, this refreshes it (e.g. after adding channels)."""
        self._check_guild_create(guild)
        payload = guild.gateway_payload()
        if guild.id not in self._announced_guild_ids:
            # Without `unavailable`, the guild is new to the bot rather than back from an outage.
            del payload["unavailable"]
            self._announced_guild_ids.add(guild.id)
        await self.dispatch("GUILD_CREATE", payload, guild_id=guild.id)

    async def announce_channel(self, channel: FakeChannel) -> None:
        """CHANNEL_CREATE for a channel added with `add_text_channel` after READY."""
        await self.dispatch("CHANNEL_CREATE", channel.payload(), guild_id=channel.guild_id)

    async def remove_guild(self, guild: FakeGuild) -> None:
        """The bot was kicked/banned or the server was deleted: GUILD_DELETE without `unavailable`."""
        self.forget_guild(guild.id)
        await self.dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild_id=guild.id)

    async def reconnect_gateway(self) -> None:
        """Ask every shard to reconnect (op 7); discord.py then RESUMEs."""
        await self.gateway.request_reconnect()

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every shard's websocket as Discord does on an error (4000 "unknown error" by
        default); discord.py reconnects and RESUMEs. Codes 4004 and 4010-4014 are fatal."""
        await self.gateway.close_all(code=code, reason="dropped by the test")

    def seed_message(
        self, channel: FakeChannel, author: FakeUser | FakeMember, content: str
    ) -> Payload:
        """A message that existed before the bot connected: stored (visible to history and
        fetches) but never dispatched, so the bot has not cached it."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        user = author.user if isinstance(author, FakeMember) else author
        if guild is not None:
            self.member(guild, user)
        message = build_message(
            message_id=self.ids.next_id(),
            channel=channel,
            guild=guild,
            author=user,
            content=content,
            users=self.users,
        )
        self.messages[int(message["id"])] = message
        return message

    async def send_message(
        self,
        channel: FakeChannel,
        author: FakeUser | FakeMember,
        content: str,
        *,
        attachments: Sequence[StoredAttachment] = (),
        reply_to: MessageRef | None = None,
    ) -> Payload:
        """A user posts in `channel`: stored, then MESSAGE_CREATE to the bot (subject to intents)."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        user = author.user if isinstance(author, FakeMember) else author
        if guild is not None:
            self.member(guild, user)
        reference = None
        if reply_to is not None:
            replied = self._message(reply_to)
            reference = {
                "type": 0,
                "message_id": replied["id"],
                "channel_id": replied["channel_id"],
            }
            if guild is not None:
                reference["guild_id"] = str(guild.id)
        message = build_message(
            message_id=self.ids.next_id(),
            channel=channel,
            guild=guild,
            author=user,
            content=content,
            users=self.users,
            attachments=list(attachments),
            reference=reference,
        )
        if reference is not None:
            message["type"] = 19
            message["referenced_message"] = self.messages.get(int(reference["message_id"]))
        self.messages[int(message["id"])] = message
        await self.dispatch_message_event("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: MessageRef, content: str) -> Payload:
        """A user edits their message: MESSAGE_UPDATE (sent even if the bot never cached it)."""
        stored = self._message(message)
        stored["content"] = content
        stored["mentions"] = [
            self.users[uid].payload() for uid in mentioned_user_ids(content) if uid in self.users
        ]
        stored["edited_timestamp"] = iso_now()
        await self.dispatch_message_event("MESSAGE_UPDATE", stored)
        return stored

    async def delete_message(self, message: MessageRef) -> None:
        """MESSAGE_DELETE; works for messages the bot never saw (raw event only)."""
        stored = self._message(message)
        self.messages.pop(int(stored["id"]), None)
        data = {"id": stored["id"], "channel_id": stored["channel_id"]}
        if "guild_id" in stored:
            data["guild_id"] = stored["guild_id"]
        await self.dispatch_message_removal("MESSAGE_DELETE", data)

    async def delete_messages(
        self, channel: FakeChannel, messages: Sequence[MessageRef | int]
    ) -> None:
        """MESSAGE_DELETE_BULK (a moderator purge); ids need not be known to the fake."""
        ids: list[str] = []
        for message in messages:
            if isinstance(message, int) and message not in self.messages:
                ids.append(str(message))
            else:
                ids.append(self._message(message)["id"])
                self.messages.pop(int(ids[-1]), None)
        data: Payload = {"ids": ids, "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        await self.dispatch_message_removal("MESSAGE_DELETE_BULK", data)

    async def invoke_slash(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser | FakeMember,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        enforce_constraints: bool = True,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """A user runs `/name [subcommand] option:value…`; returns the interaction's handle.

        The command is looked up in what the bot registered (guild commands first), so
        option types follow the bot's own declaration. `subcommand` may be "group sub".
        Attachment options take `(filename, bytes[, content_type])` or `make_attachment(...)`.
        `guild=None` runs it in a DM with the bot: `channel` must be `dm_channel(user)`.
        """
        command = self.registered_command(name, guild=guild)
        if command is None:
            guild_commands = self.guild_commands.get(guild.id, []) if guild else []
            known = sorted(c["name"] for c in [*self.global_commands, *guild_commands])
            raise InvalidInvocation(
                f"/{name} was never registered by the bot (registered: {known})"
            )
        if guild is None:
            plain_user = user.user if isinstance(user, FakeMember) else user
            return await self._invoke_slash_in_dm(
                command, channel, plain_user, options, subcommand, enforce_constraints, locale
            )
        member = self.member(guild, user.user if isinstance(user, FakeMember) else user)
        world = CommandWorld(
            guild,
            lambda resolved_channel: guild.permissions_in(resolved_channel, member.id),
            self._attachment_factory,
        )
        data = build_command_data(
            command, options or {}, subcommand, world, enforce_constraints=enforce_constraints
        )
        member = self.member(guild, user.user if isinstance(user, FakeMember) else user)
        payload = self._interaction_payload(
            InteractionType.APPLICATION_COMMAND, guild, channel, member, data, locale
        )
        return await self._dispatch_interaction(payload)

    async def _invoke_slash_in_dm(
        self,
        command: Payload,
        channel: FakeChannel,
        user: FakeUser,
        options: dict[str, Any] | None,
        subcommand: str | None,
        enforce_constraints: bool,
        locale: str,
    ) -> InteractionHandle:
        if channel.type != ChannelType.DM or channel.recipient is not user:
            raise InvalidInvocation(f"a DM command runs in dm_channel({user.name}), not {channel}")
        contexts = command.get("contexts")
        if command.get("dm_permission") is False or (
            contexts is not None and InteractionContext.BOT_DM not in contexts
        ):
            raise InvalidInvocation(f"/{command['name']} is not available in DMs (guild only)")
        world = CommandWorld(
            None,
            lambda resolved_channel: self.permissions_in(resolved_channel, user),
            self._attachment_factory,
        )
        data = build_command_data(
            command, options or {}, subcommand, world, enforce_constraints=enforce_constraints
        )
        payload = self._dm_interaction_payload(
            InteractionType.APPLICATION_COMMAND, channel, user, data, locale
        )
        return await self._dispatch_interaction(payload)

    async def click_button(
        self,
        message: MessageRef,
        user: FakeUser | FakeMember,
        custom_id: str | None = None,
        *,
        label: str | None = None,
    ) -> InteractionHandle:
        """A user presses a button on `message` (component interaction, type 3), found by
        `custom_id` or by its `label`."""
        if (custom_id is None) == (label is None):
            raise InvalidInvocation("click_button needs exactly one of custom_id and label")
        if label is not None:
            buttons = self.buttons(message)
            if label not in buttons:
                raise InvalidInvocation(
                    f"no button labelled {label!r} (buttons: {sorted(buttons)})"
                )
            custom_id = buttons[label]
        assert custom_id is not None
        return await self._component_interaction(message, user, custom_id, values=None)

    def buttons(self, message: MessageRef) -> dict[str, str]:
        """The message's buttons as label -> custom_id, e.g. `{"Regenerate": "gen:regen:…"}`."""
        return button_ids(self._message(message).get("components") or [])

    async def choose_options(
        self, message: MessageRef, user: FakeUser | FakeMember, custom_id: str, values: list[str]
    ) -> InteractionHandle:
        """A user picks `values` in the select menu `custom_id` on `message`."""
        return await self._component_interaction(message, user, custom_id, values=values)

    def expire_interaction(self, handle: InteractionHandle) -> None:
        """Make its token invalid, as Discord does 15 minutes after the interaction."""
        handle.expired = True

    # ------------------------------------------------------------------ queries

    def registered_command(self, name: str, *, guild: FakeGuild | None = None) -> Payload | None:
        """A command as the bot registered it (guild-specific first, then global)."""
        candidates = [
            *(self.guild_commands.get(guild.id, []) if guild else []),
            *self.global_commands,
        ]
        return next((c for c in candidates if c["name"] == name), None)

    def messages_sent(
        self, kind: MessageKind | None = None, *, channel: FakeChannel | None = None
    ) -> list[SentMessage]:
        """Every message payload the bot created or edited (callbacks, followups, edits,
        channel messages), in order; filter by `kind` and/or `channel`."""
        return [
            sent
            for sent in self.sent
            if (kind is None or sent.kind == kind)
            and (channel is None or sent.channel_id == channel.id)
        ]

    def channel_messages(self, channel: FakeChannel) -> list[Payload]:
        """The messages currently in `channel` (users' and the bot's), oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel.id)]

    @staticmethod
    def pings(sent: SentMessage) -> Pings:
        """Who this message would notify on real Discord (content × allowed_mentions)."""
        return pings_of(sent.content, sent.allowed_mentions)

    def permissions_in(self, channel: FakeChannel, user: FakeUser | FakeMember) -> int:
        """A user's permissions in a channel, overwrites included (DMs: everything)."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        return guild.permissions_in(channel, user.id) if guild else Permission.ALL

    def app_permissions_in(self, channel: FakeChannel) -> int:
        """The bot's permissions in a channel (what interactions carry as `app_permissions`)."""
        return self.permissions_in(channel, self.bot_user)

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """Recorded requests by method and path prefix, e.g. `("PUT", "/applications/")`."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def take_spec_violations(self) -> list[SpecViolation]:
        """Return and clear the violations (for tests that provoke one on purpose)."""
        taken = list(self.spec_violations)
        self.spec_violations.clear()
        return taken

    def take_unexpected_requests(self) -> list[RecordedRequest]:
        """Return and clear requests to unimplemented routes (for tests that make one on purpose)."""
        taken = list(self.unexpected_requests)
        self.unexpected_requests.clear()
        return taken

    def problems(self) -> list[str]:
        """Readable lines for everything that should fail a test: spec violations, requests to
        routes the fake does not implement, gateway protocol errors."""
        lines = [f"OpenAPI violation: {v}" for v in self.spec_violations]
        lines += [f"unexpected request: {r.method} {r.path}" for r in self.unexpected_requests]
        lines += [f"gateway: {e}" for e in self.gateway.protocol_errors]
        lines += [f"fake Discord bug: {e}" for e in self.internal_errors]
        lines += [
            f"{handle} acknowledged after {handle.response_latency:.2f}s (> {self.ack_deadline_s}s)"
            for handle in self.interactions.values()
            if handle.acknowledged_late and handle.response_latency is not None
        ]
        return lines

    def assert_clean(self) -> None:
        problems = self.problems()
        if problems:
            raise AssertionError("fake Discord saw problems:\n  " + "\n  ".join(problems))

    async def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 5.0, *, what: str = "condition"
    ) -> None:
        """Wait until `predicate()` is true; re-checked whenever a request or event happens."""
        await wait_until(predicate, lambda: self._changed, timeout_s, what)

    def notify_change(self) -> None:
        """Wake `wait_for` callers (called on every request and gateway frame)."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ used by the REST routes

    def record_sent(self, sent: SentMessage) -> None:
        self.sent.append(sent)
        if sent.interaction_id is not None:
            handle = self.interactions.get(sent.interaction_id)
            if handle is not None:
                if sent.kind == MessageKind.ORIGINAL_EDIT:
                    handle.edits.append(sent)
                elif sent.kind == MessageKind.FOLLOWUP:
                    handle.followups.append(sent)

    def forget_guild(self, guild_id: int) -> None:
        """Drop a guild the bot left or was removed from (its channels and commands too)."""
        guild = self.guilds.pop(guild_id, None)
        self._announced_guild_ids.discard(guild_id)
        if guild is not None:
            for channel_id in guild.channels:
                self.channels.pop(channel_id, None)
        self.guild_commands.pop(guild_id, None)

    def _self_check(self, what: str, schema_name: str, instance: Any) -> None:
        """Gateway objects the fake sends must look like the spec's REST objects of that kind."""
        self.internal_errors.extend(
            f"{what} sent a {schema_name} that breaks the spec: {problem}"
            for problem in self.validator.validate_schema(schema_name, instance)
        )

    def _check_guild_create(self, guild: FakeGuild) -> None:
        self._self_check("GUILD_CREATE", "GuildResponse", guild.payload())
        for member in guild.members.values():
            self._self_check("GUILD_CREATE", "GuildMemberResponse", member.payload())
        for channel in guild.channels.values():
            self._self_check("GUILD_CREATE", "GuildChannelResponse", channel.payload())

    def _sessions_for(self, guild_id: int | None) -> list[GatewaySession]:
        sessions = self.gateway.sessions
        if guild_id is None:
            return [s for s in sessions if s.shard_id == 0][:1]
        return [s for s in sessions if s.handles_guild(guild_id)]

    async def dispatch_message_event(self, event: str, message: Payload) -> None:
        """MESSAGE_CREATE/UPDATE with Discord's intent rules: no GUILD_MESSAGES, no event;
        no MESSAGE_CONTENT, empty content unless the bot is mentioned or the author."""
        self._self_check(event, "MessageResponse", message)
        guild_id = int(message["guild_id"]) if "guild_id" in message else None
        channel = self.channels.get(int(message["channel_id"]))
        if channel is not None and not self.app_permissions_in(channel) & Permission.VIEW_CHANNEL:
            return  # Discord sends no events from channels the bot cannot see
        for session in self._sessions_for(guild_id):
            needed = Intent.GUILD_MESSAGES if guild_id else Intent.DIRECT_MESSAGES
            if not session.has_intent(needed):
                continue
            data = dict(message)
            visible = (
                session.has_intent(Intent.MESSAGE_CONTENT)
                or guild_id is None
                or data["author"]["id"] == str(self.bot_user.id)
                or any(m["id"] == str(self.bot_user.id) for m in data.get("mentions", []))
            )
            if not visible:
                data.update(content="", embeds=[], attachments=[], components=[])
            await session.dispatch(event, data)

    async def dispatch_message_removal(self, event: str, data: Payload) -> None:
        """MESSAGE_DELETE / MESSAGE_DELETE_BULK to the shards with the message intents."""
        guild_id = int(data["guild_id"]) if "guild_id" in data else None
        for session in self._sessions_for(guild_id):
            if session.has_intent(Intent.GUILD_MESSAGES if guild_id else Intent.DIRECT_MESSAGES):
                await session.dispatch(event, data)

    def _message(self, ref: MessageRef) -> Payload:
        if isinstance(ref, InteractionHandle):
            if ref.original_message_id is None:
                raise KeyError(f"{ref} has no response message yet")
            ref = ref.original_message_id
        if isinstance(ref, SentMessage):
            if ref.message_id is None:
                raise KeyError("that payload created no message")
            ref = ref.message_id
        if isinstance(ref, dict):
            ref = int(ref["id"])
        message = self.messages.get(ref)
        if message is None:
            raise KeyError(f"no message {ref} in the fake")
        return message

    def _attachment_factory(
        self, filename: str, data: bytes, content_type: str
    ) -> StoredAttachment:
        return self.make_attachment(filename, data, content_type)

    def _interaction_payload(
        self,
        kind: int,
        guild: FakeGuild,
        channel: FakeChannel,
        member: FakeMember,
        data: Payload,
        locale: str,
        message: Payload | None = None,
    ) -> Payload:
        member_payload = member.payload()
        # Both carry the member's permissions in this channel, overwrites included.
        member_payload["permissions"] = str(guild.permissions_in(channel, member.id))
        channel_payload = channel.payload()
        channel_payload["permissions"] = member_payload["permissions"]
        payload: Payload = {
            "id": str(self.ids.next_id()),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel_payload,
            "member": member_payload,
            "token": "itoken-" + secrets.token_urlsafe(24),
            "version": 1,
            "app_permissions": str(self.app_permissions_in(channel)),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if message is not None:
            payload["message"] = message
        return payload

    def _dm_interaction_payload(
        self, kind: int, channel: FakeChannel, user: FakeUser, data: Payload, locale: str
    ) -> Payload:
        """A DM interaction: no guild_id/guild/member, the caller as `user`, context 1."""
        user_payload = user.payload()
        channel_payload = channel.payload()
        self._self_check("INTERACTION_CREATE", "UserResponse", user_payload)
        self._self_check("INTERACTION_CREATE", "PrivateChannelResponse", channel_payload)
        return {
            "id": str(self.ids.next_id()),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel_payload,
            "user": user_payload,
            "token": "itoken-" + secrets.token_urlsafe(24),
            "version": 1,
            "app_permissions": str(self.app_permissions_in(channel)),
            "locale": locale,
            "entitlements": [],
            # Discord's docs: the guild-install owner is "0" in a DM with the app's bot user.
            "authorizing_integration_owners": {"0": "0"},
            "context": InteractionContext.BOT_DM,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }

    async def _dispatch_interaction(self, payload: Payload) -> InteractionHandle:
        handle = InteractionHandle(
            id=int(payload["id"]), token=payload["token"], payload=payload, fake=self
        )
        self.interactions[handle.id] = handle
        guild_id = int(payload["guild_id"]) if "guild_id" in payload else None
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=guild_id)
        return handle

    async def _component_interaction(
        self,
        message: MessageRef,
        user: FakeUser | FakeMember,
        custom_id: str,
        values: list[str] | None,
    ) -> InteractionHandle:
        stored = self._message(message)
        component = find_component(stored.get("components") or [], custom_id)
        if component is None:
            raise InvalidInvocation(f"message {stored['id']} has no component {custom_id!r}")
        if component.get("disabled"):
            raise InvalidInvocation(
                f"component {custom_id!r} is disabled; Discord would not send a click"
            )
        channel = self.channels[int(stored["channel_id"])]
        guild = self.guilds[int(stored["guild_id"])]
        member = self.member(guild, user.user if isinstance(user, FakeMember) else user)
        data: Payload = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        payload = self._interaction_payload(
            InteractionType.MESSAGE_COMPONENT,
            guild,
            channel,
            member,
            data,
            "en-US",
            message=dict(stored),
        )
        handle = await self._dispatch_interaction(payload)
        # For component interactions, "@original" is the message the component is on.
        handle.original_message_id = int(stored["id"])
        return handle

    async def _send_ready(self, session: GatewaySession) -> None:
        own_guilds = [g for g in self.guilds.values() if session.handles_guild(g.id)]
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, flags=0)
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": user,
                "guilds": [{"id": str(g.id), "unavailable": True} for g in own_guilds],
                "session_id": session.session_id,
                "resume_gateway_url": self.gateway_url,
                "shard": [session.shard_id, session.shard_count],
                "application": {"id": str(self.application_id), "flags": 1 << 23},
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in own_guilds:
            self._check_guild_create(guild)
            self._announced_guild_ids.add(guild.id)
            await session.dispatch("GUILD_CREATE", guild.gateway_payload())

    async def _send_member_chunk(self, session: GatewaySession, request: Payload) -> None:
        guild = self.guilds.get(int(request.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        user_ids = request.get("user_ids")
        if user_ids:
            wanted = {int(uid) for uid in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.id in wanted]
        elif request.get("query"):
            members = [m for m in members if m.user.name.startswith(request["query"])]
        limit = request.get("limit") or 0
        if limit:
            members = members[:limit]
        chunk: Payload = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if request.get("nonce"):
            chunk["nonce"] = request["nonce"]
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
