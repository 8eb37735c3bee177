"""The fake's world: users, guilds, roles, channels and members, and their JSON payloads.

Every `*_payload` method returns the object exactly as Discord's gateway/REST would send it
(ids as strings, ISO timestamps), so discord.py builds its models from them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.fakediscord.snowflakes import iso_now

Payload = dict[str, Any]


class Permission:
    """Permission bits (https://discord.com/developers/docs/topics/permissions)."""

    ADMINISTRATOR = 1 << 3
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_APPLICATION_COMMANDS = 1 << 31
    ALL = (1 << 53) - 1

    # What @everyone gets in a freshly created server, near enough.
    EVERYONE_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | ADD_REACTIONS
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_APPLICATION_COMMANDS
    )
    # What the bot's integration role gets unless a test asks otherwise.
    BOT_DEFAULT = EVERYONE_DEFAULT


class HasValue(Protocol):
    """Anything with an integer `.value`, e.g. `discord.Permissions`."""

    @property
    def value(self) -> int: ...


def permission_bits(permissions: int | HasValue) -> int:
    """Accept plain ints or `discord.Permissions` without the fake importing discord."""
    return permissions if isinstance(permissions, int) else int(permissions.value)


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GUILD_CATEGORY = 4
    PUBLIC_THREAD = 11


@dataclass
class FakeUser:
    id: int
    name: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> Payload:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
        }


@dataclass
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> Payload:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


class OverwriteType:
    ROLE = 0
    MEMBER = 1


@dataclass
class PermissionOverwrite:
    """A channel's allow/deny bits for one role or member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> Payload:
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class FakeChannel:
    id: int
    guild_id: int | None
    name: str
    type: int = ChannelType.GUILD_TEXT
    nsfw: bool = False
    position: int = 0
    topic: str | None = None
    recipient: FakeUser | None = None  # DM channels only
    overwrites: dict[int, PermissionOverwrite] = field(default_factory=dict)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> Payload:
        if self.type == ChannelType.DM:
            recipients = [self.recipient.payload()] if self.recipient else []
            return {
                "id": str(self.id),
                "type": self.type,
                "recipients": recipients,
                "last_message_id": None,
                "flags": 0,
            }
        data: Payload = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "nsfw": self.nsfw,
            "topic": self.topic,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class FakeMember:
    user: FakeUser
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    def payload(self, *, with_user: bool = True) -> Payload:
        data: Payload = {
            "roles": [str(role_id) for role_id in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = field(default_factory=iso_now)

    @property
    def everyone_role(self) -> FakeRole:
        # Discord gives @everyone the guild's own id.
        return self.roles[self.id]

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions as Discord computes them (owner and admins get all)."""
        if user_id == self.owner_id:
            return Permission.ALL
        member = self.members.get(user_id)
        bits = self.everyone_role.permissions
        if member is not None:
            for role_id in member.role_ids:
                bits |= self.roles[role_id].permissions
        if bits & Permission.ADMINISTRATOR:
            return Permission.ALL
        return bits

    def permissions_in(self, channel: FakeChannel, user_id: int) -> int:
        """Channel permissions with overwrites, by Discord's algorithm (@everyone, then roles
        together, then the member; administrators and the owner bypass overwrites)."""
        bits = self.permissions_of(user_id)
        if bits == Permission.ALL:
            return bits
        member = self.members.get(user_id)
        role_ids = set(member.role_ids) if member else set()
        everyone = channel.overwrites.get(self.id)
        if everyone is not None:
            bits = (bits & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for overwrite in channel.overwrites.values():
            if overwrite.type == OverwriteType.ROLE and overwrite.id in role_ids:
                allow |= overwrite.allow
                deny |= overwrite.deny
        bits = (bits & ~deny) | allow
        own = channel.overwrites.get(user_id)
        if own is not None and own.type == OverwriteType.MEMBER:
            bits = (bits & ~own.deny) | own.allow
        if not bits & Permission.VIEW_CHANNEL:
            return 0  # can't see it, can't do anything in it
        return bits

    def payload(self) -> Payload:
        """The basic guild object (REST `GET /guilds/{id}`)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role.payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "max_presences": None,
            "home_header": None,
            "region": "deprecated",
            "widget_enabled": False,
            "widget_channel_id": None,
            "nsfw": False,
            "incidents_data": None,
        }

    def gateway_payload(self) -> Payload:
        """The full GUILD_CREATE object: every member is included, so no chunking is needed."""
        data = self.payload()
        data.update(
            {
                "unavailable": False,
                "large": False,
                "joined_at": self.joined_at,
                "member_count": len(self.members),
                "members": [member.payload() for member in self.members.values()],
                "channels": [channel.payload() for channel in self.channels.values()],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
        )
        return data
