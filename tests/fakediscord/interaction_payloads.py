"""The INTERACTION_CREATE payloads the fake sends: in a server, or in a DM with the bot."""

from __future__ import annotations

import secrets

from tests.fakediscord.entities import FakeChannel, FakeGuild, FakeMember, FakeUser
from tests.fakediscord.interactions import InteractionContext
from tests.fakediscord.world import Payload, World

# Discord's default upload limit, which interactions carry as `attachment_size_limit`.
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


def interaction_token() -> str:
    return "itoken-" + secrets.token_urlsafe(24)


def guild_interaction_payload(
    world: World,
    kind: int,
    guild: FakeGuild,
    channel: FakeChannel,
    member: FakeMember,
    data: Payload,
    locale: str,
    message: Payload | None = None,
) -> Payload:
    """An interaction in a server channel, by `member`; `message` for component clicks."""
    member_payload = member.payload()
    # Both carry the member's permissions in this channel, overwrites included.
    member_payload["permissions"] = str(guild.permissions_in(channel, member.id))
    channel_payload = channel.payload()
    channel_payload["permissions"] = member_payload["permissions"]
    payload: Payload = {
        "id": str(world.ids.next_id()),
        "application_id": str(world.application_id),
        "type": kind,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
        "channel_id": str(channel.id),
        "channel": channel_payload,
        "member": member_payload,
        "token": interaction_token(),
        "version": 1,
        "app_permissions": str(world.app_permissions_in(channel)),
        "locale": locale,
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": InteractionContext.GUILD,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if message is not None:
        payload["message"] = message
    return payload


def dm_interaction_payload(
    world: World,
    kind: int,
    channel: FakeChannel,
    user: FakeUser,
    data: Payload,
    locale: str,
) -> Payload:
    """A DM interaction: no guild_id/guild/member, the caller as `user`, context 1."""
    return {
        "id": str(world.ids.next_id()),
        "application_id": str(world.application_id),
        "type": kind,
        "data": data,
        "channel_id": str(channel.id),
        "channel": channel.payload(),
        "user": user.payload(),
        "token": interaction_token(),
        "version": 1,
        "app_permissions": str(world.app_permissions_in(channel)),
        "locale": locale,
        "entitlements": [],
        # Discord's docs: the guild-install owner is "0" in a DM with the app's bot user.
        "authorizing_integration_owners": {"0": "0"},
        "context": InteractionContext.BOT_DM,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
