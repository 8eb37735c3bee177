"""Discord's permission arithmetic in the fake's entities."""

from __future__ import annotations

from tests.fakediscord.entities import (
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    OverwriteType,
    Permission,
    PermissionOverwrite,
)

GUILD_ID = 1 << 22
OWNER, ADMIN, MOD, PLAIN = 2, 3, 4, 5
ADMIN_ROLE, MOD_ROLE = 10, 11


def _guild() -> tuple[FakeGuild, FakeChannel]:
    guild = FakeGuild(id=GUILD_ID, name="g", owner_id=OWNER)
    guild.roles[GUILD_ID] = FakeRole(GUILD_ID, GUILD_ID, "@everyone", Permission.EVERYONE_DEFAULT)
    guild.roles[ADMIN_ROLE] = FakeRole(ADMIN_ROLE, GUILD_ID, "admin", Permission.ADMINISTRATOR)
    guild.roles[MOD_ROLE] = FakeRole(MOD_ROLE, GUILD_ID, "mod", Permission.MANAGE_GUILD)
    for user_id, roles in ((OWNER, []), (ADMIN, [ADMIN_ROLE]), (MOD, [MOD_ROLE]), (PLAIN, [])):
        guild.members[user_id] = FakeMember(FakeUser(user_id, f"u{user_id}"), GUILD_ID, roles)
    channel = FakeChannel(20, GUILD_ID, "c")
    guild.channels[channel.id] = channel
    return guild, channel


def test_guild_permissions_combine_roles_and_owner_gets_all() -> None:
    guild, _ = _guild()
    assert guild.permissions_of(OWNER) == Permission.ALL
    assert guild.permissions_of(ADMIN) == Permission.ALL
    assert guild.permissions_of(MOD) == Permission.EVERYONE_DEFAULT | Permission.MANAGE_GUILD
    assert guild.permissions_of(PLAIN) == Permission.EVERYONE_DEFAULT


def test_overwrites_apply_everyone_then_roles_then_member() -> None:
    guild, channel = _guild()
    channel.overwrites[GUILD_ID] = PermissionOverwrite(
        GUILD_ID, OverwriteType.ROLE, deny=Permission.SEND_MESSAGES
    )
    channel.overwrites[MOD_ROLE] = PermissionOverwrite(
        MOD_ROLE, OverwriteType.ROLE, allow=Permission.SEND_MESSAGES
    )
    assert not guild.permissions_in(channel, PLAIN) & Permission.SEND_MESSAGES
    assert guild.permissions_in(channel, MOD) & Permission.SEND_MESSAGES
    channel.overwrites[MOD] = PermissionOverwrite(
        MOD, OverwriteType.MEMBER, deny=Permission.SEND_MESSAGES
    )
    assert not guild.permissions_in(channel, MOD) & Permission.SEND_MESSAGES
    assert (
        guild.permissions_in(channel, ADMIN) == Permission.ALL
    )  # administrators bypass overwrites


def test_no_view_channel_means_no_permissions_there() -> None:
    guild, channel = _guild()
    channel.overwrites[GUILD_ID] = PermissionOverwrite(
        GUILD_ID, OverwriteType.ROLE, deny=Permission.VIEW_CHANNEL
    )
    assert guild.permissions_in(channel, PLAIN) == 0
    assert guild.permissions_in(channel, OWNER) == Permission.ALL
