"""The fake acting as Discord towards the bot over the gateway.

`GatewayEvents` answers IDENTIFY (READY, then GUILD_CREATEs) and member requests, tells the
bot it joined or left a server or that a channel or thread was deleted, asks it to reconnect
or drops it, and applies Discord's intent and visibility rules to message events. What users
do is in `driver.py`.
"""

from __future__ import annotations

from typing import Any

from tests.fakediscord.entities import ChannelType, FakeChannel, FakeGuild, Permission
from tests.fakediscord.gateway import GatewaySession, Intent
from tests.fakediscord.inspection import Inspection
from tests.fakediscord.world import Payload


class GatewayEvents(Inspection):
    """What Discord pushes to the bot over the gateway."""

    async def dispatch(self, event: str, data: Any, *, guild_id: int | None = None) -> None:
        """Send a raw gateway event to the shard that owns `guild_id` (shard 0 if None)."""
        for session in self._sessions_for(guild_id):
            await session.dispatch(event, data)

    async def join_guild(self, guild: FakeGuild) -> None:
        """GUILD_CREATE after READY. For a guild the bot has not seen, it was just invited
        (`on_guild_join`); for one it has, this refreshes it (e.g. after adding channels)."""
        self.check_guild_create(guild)
        payload = guild.gateway_payload()
        if guild.id not in self.announced_guild_ids:
            # Without `unavailable`, the guild is new to the bot rather than back from an outage.
            del payload["unavailable"]
            self.announced_guild_ids.add(guild.id)
        await self.dispatch("GUILD_CREATE", payload, guild_id=guild.id)

    async def announce_channel(self, channel: FakeChannel) -> None:
        """CHANNEL_CREATE for a channel added with `add_text_channel` after READY."""
        await self.dispatch("CHANNEL_CREATE", channel.payload(), guild_id=channel.guild_id)

    async def remove_guild(self, guild: FakeGuild) -> None:
        """The bot was kicked/banned or the server was deleted: GUILD_DELETE without
        `unavailable`. With no bot connected only the world changes, as on Discord: the bot
        finds the guild missing from its next READY."""
        self.forget_guild(guild.id)
        await self.dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild_id=guild.id)

    async def delete_channel(self, channel: FakeChannel) -> None:
        """A channel is deleted, its messages with it: CHANNEL_DELETE (the channel object as
        it was). No bot connected: only the world changes (it is missing from GUILD_CREATE)."""
        payload = channel.payload()
        self.self_check("CHANNEL_DELETE", "GuildChannelResponse", payload)
        self.forget_channel(channel)
        await self.dispatch("CHANNEL_DELETE", payload, guild_id=channel.guild_id)

    async def delete_thread(self, parent: FakeChannel, thread_id: int) -> None:
        """THREAD_DELETE for a thread of `parent`, with Discord's partial payload (id,
        guild_id, parent_id, type). The fake does not model threads, so `thread_id` is any
        snowflake (`fake.ids.next_id()`); discord.py reports it as `on_raw_thread_delete`."""
        self.forget_messages_in(thread_id)
        data: Payload = {
            "id": str(thread_id),
            "guild_id": str(parent.guild_id),
            "parent_id": str(parent.id),
            "type": ChannelType.PUBLIC_THREAD,
        }
        await self.dispatch("THREAD_DELETE", data, guild_id=parent.guild_id)

    async def reconnect_gateway(self) -> None:
        """Ask every shard to reconnect (op 7); discord.py then RESUMEs."""
        await self.gateway.request_reconnect()

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every shard's websocket as Discord does on an error (4000 "unknown error" by
        default); discord.py reconnects and RESUMEs. Codes 4004 and 4010-4014 are fatal."""
        await self.gateway.close_all(code=code, reason="dropped by the test")

    async def dispatch_message_event(self, event: str, message: Payload) -> None:
        """MESSAGE_CREATE/UPDATE with Discord's intent rules: no GUILD_MESSAGES, no event;
        no MESSAGE_CONTENT, empty content unless the bot is mentioned or the author."""
        self.self_check(event, "MessageResponse", message)
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

    def check_guild_create(self, guild: FakeGuild) -> None:
        """Self-check the objects a GUILD_CREATE for `guild` carries against the spec."""
        self.self_check("GUILD_CREATE", "GuildResponse", guild.payload())
        for member in guild.members.values():
            self.self_check("GUILD_CREATE", "GuildMemberResponse", member.payload())
        for channel in guild.channels.values():
            self.self_check("GUILD_CREATE", "GuildChannelResponse", channel.payload())

    async def send_ready(self, session: GatewaySession) -> None:
        """On IDENTIFY: READY, then a GUILD_CREATE for each of the shard's guilds."""
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
            self.check_guild_create(guild)
            self.announced_guild_ids.add(guild.id)
            await session.dispatch("GUILD_CREATE", guild.gateway_payload())

    async def send_member_chunk(self, session: GatewaySession, request: Payload) -> None:
        """Answer a REQUEST_GUILD_MEMBERS (op 8) with one GUILD_MEMBERS_CHUNK."""
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

    def _sessions_for(self, guild_id: int | None) -> list[GatewaySession]:
        sessions = self.gateway.sessions
        if guild_id is None:
            return [s for s in sessions if s.shard_id == 0][:1]
        return [s for s in sessions if s.handles_guild(guild_id)]
