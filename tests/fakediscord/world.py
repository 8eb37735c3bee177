"""The fake's world: users, servers, roles, channels, members, permissions and messages.

`World` holds the state every other part of `FakeDiscord` reads (the REST routes, the
gateway events, the test-facing queries) and the builders a test sets the scene with
(`add_guild`, `add_text_channel`, `add_user`, `add_member`, `seed_message`, ...). Nothing
here talks to the bot: see `driver.py` for what is sent to it and `inspection.py` for what it
did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
from tests.fakediscord.interactions import InteractionHandle
from tests.fakediscord.messages import StoredAttachment, build_message
from tests.fakediscord.records import SentMessage
from tests.fakediscord.snowflakes import SnowflakeFactory

Payload = dict[str, Any]
# What a test may name a message by: its payload, its id, what the bot sent, or the
# interaction whose response it is.
MessageRef = Payload | int | SentMessage | InteractionHandle


class World:
    """The state of the fake Discord and the builders for it."""

    def __init__(self, *, bot_name: str, bot_permissions: int | HasValue) -> None:
        self.ids = SnowflakeFactory()
        self.application_id = self.ids.next_id()
        # Like a real bot application, the bot user shares the application's id.
        self.bot_user = FakeUser(id=self.application_id, name=bot_name, bot=True)
        self.bot_permissions = permission_bits(bot_permissions)
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
        # Guilds the bot got a GUILD_CREATE for (a second one is a refresh, not a join).
        self.announced_guild_ids: set[int] = set()

    # Where the fake listens; `FakeDiscord` knows its port.

    @property
    def base_url(self) -> str:
        """The HTTP root (attachment URLs point there)."""
        raise NotImplementedError

    @property
    def gateway_url(self) -> str:
        """The gateway websocket (READY's `resume_gateway_url`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ builders

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

    def seed_message(
        self, channel: FakeChannel, author: FakeUser | FakeMember, content: str
    ) -> Payload:
        """A message that existed before the bot connected: stored (visible to history and
        fetches) but never dispatched, so the bot has not cached it."""
        guild = self.guild_of(channel)
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

    def forget_guild(self, guild_id: int) -> None:
        """Drop a guild the bot left or was removed from (its channels and commands too)."""
        guild = self.guilds.pop(guild_id, None)
        self.announced_guild_ids.discard(guild_id)
        if guild is not None:
            for channel_id in guild.channels:
                self.channels.pop(channel_id, None)
        self.guild_commands.pop(guild_id, None)

    def forget_channel(self, channel: FakeChannel) -> None:
        """Drop a deleted channel and the messages in it (Discord deletes them with it)."""
        self.forget_messages_in(channel.id)
        self.channels.pop(channel.id, None)
        guild = self.guild_of(channel)
        if guild is not None:
            guild.channels.pop(channel.id, None)

    def forget_messages_in(self, channel_id: int) -> None:
        """Drop every stored message of a channel or thread (it was deleted)."""
        doomed = [m for m, data in self.messages.items() if data["channel_id"] == str(channel_id)]
        for message_id in doomed:
            del self.messages[message_id]

    # ------------------------------------------------------------------ lookups

    def guild_of(self, channel: FakeChannel) -> FakeGuild | None:
        """The channel's server (None for a DM, or a server the bot has left)."""
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def permissions_in(self, channel: FakeChannel, user: FakeUser | FakeMember) -> int:
        """A user's permissions in a channel, overwrites included (DMs: everything)."""
        guild = self.guild_of(channel)
        return guild.permissions_in(channel, user.id) if guild else Permission.ALL

    def app_permissions_in(self, channel: FakeChannel) -> int:
        """The bot's permissions in a channel (what interactions carry as `app_permissions`)."""
        return self.permissions_in(channel, self.bot_user)

    def find_message(self, ref: MessageRef) -> Payload:
        """The stored message `ref` names; KeyError if the fake has none."""
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
