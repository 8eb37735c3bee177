"""Channels, their messages, reactions and typing, and guild lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakediscord.entities import FakeChannel, Permission
from tests.fakediscord.messages import EPHEMERAL_FLAG
from tests.fakediscord.records import MessageKind, RecordedRequest
from tests.fakediscord.routing import ApiError, Payload, Result, RouteSpec, unknown

if TYPE_CHECKING:
    from tests.fakediscord.bot_messages import BotMessages
    from tests.fakediscord.server import FakeDiscord


class ChannelRoutes:
    """Channel and guild routes; sends are checked against the bot's permissions."""

    def __init__(self, fake: FakeDiscord, messages: BotMessages) -> None:
        self.fake = fake
        self.messages = messages

    def routes(self) -> list[RouteSpec]:
        return [
            ("GET", "/channels/{channel_id}", self.get_channel, True),
            ("GET", "/channels/{channel_id}/messages", self.get_channel_messages, True),
            ("POST", "/channels/{channel_id}/messages", self.create_channel_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_channel_message, True),
            (
                "PATCH",
                "/channels/{channel_id}/messages/{message_id}",
                self.edit_channel_message,
                True,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}",
                self.delete_channel_message,
                True,
            ),
            ("POST", "/channels/{channel_id}/typing", self.trigger_typing, True),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self.add_reaction,
                True,
            ),
            ("GET", "/guilds/{guild_id}", self.get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member, True),
        ]

    def _channel(self, params: dict[str, str]) -> FakeChannel:
        channel = self.fake.channels.get(int(params["channel_id"]))
        if channel is None:
            raise unknown("Channel", 10003)
        return channel

    def _require(self, channel: FakeChannel, *bits: int) -> None:
        granted = self.fake.app_permissions_in(channel)
        for bit in bits:
            if not granted & bit:
                raise ApiError(403, 50013, "Missing Permissions")

    def _channel_message(self, params: dict[str, str]) -> Payload:
        channel = self._channel(params)
        message = self.fake.messages.get(int(params["message_id"]))
        if message is None or message["channel_id"] != str(channel.id):
            raise unknown("Message", 10008)
        return message

    async def get_channel(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        channel = self._channel(params)
        self._require(channel, Permission.VIEW_CHANNEL)
        return 200, channel.payload()

    async def get_channel_messages(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        channel = self._channel(params)
        self._require(channel, Permission.VIEW_CHANNEL, Permission.READ_MESSAGE_HISTORY)
        messages = [
            m for m in self.fake.channel_messages(channel) if not m["flags"] & EPHEMERAL_FLAG
        ]
        before = request.query.get("before")
        after = request.query.get("after")
        if before:
            messages = [m for m in messages if int(m["id"]) < int(before)]
        if after:
            messages = [m for m in messages if int(m["id"]) > int(after)]
        limit = int(request.query.get("limit", "50"))
        newest_first = sorted(messages, key=lambda m: int(m["id"]), reverse=True)
        if after and not before:
            return 200, sorted(messages, key=lambda m: int(m["id"]))[:limit][::-1]
        return 200, newest_first[:limit]

    async def create_channel_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        channel = self._channel(params)
        self._require(channel, Permission.VIEW_CHANNEL, Permission.SEND_MESSAGES)
        if request.files:
            self._require(channel, Permission.ATTACH_FILES)
        data: Payload = request.json or {}
        self.messages.enforce_content_limit(request, data)
        if not (
            data.get("content")
            or data.get("embeds")
            or request.files
            or data.get("sticker_ids")
            or data.get("components")
            or data.get("poll")
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message = await self.messages.create(
            channel, data, request.files, handle=None, loading=False
        )
        self.messages.record_sent(MessageKind.CHANNEL_MESSAGE, data, request.files, message, None)
        return 200, message

    async def get_channel_message(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        return 200, self._channel_message(params)

    async def edit_channel_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        target = self._channel_message(params)
        if target["author"]["id"] != str(self.fake.bot_user.id):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        data: Payload = request.json or {}
        self.messages.enforce_content_limit(request, data)
        message = await self.messages.edit(int(target["id"]), data, request.files)
        self.messages.record_sent(MessageKind.CHANNEL_EDIT, data, request.files, message, None)
        return 200, message

    async def delete_channel_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        target = self._channel_message(params)
        if target["author"]["id"] != str(self.fake.bot_user.id):
            self._require(self._channel(params), Permission.MANAGE_MESSAGES)
        await self.messages.delete(target)
        return 204, None

    async def add_reaction(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        message = self._channel_message(params)
        self._require(
            self._channel(params), Permission.READ_MESSAGE_HISTORY, Permission.ADD_REACTIONS
        )
        emoji = params["emoji"]
        reactions: list[Payload] = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["emoji"]["name"] == emoji:
                if not reaction["me"]:
                    reaction["count"] += 1
                    reaction["me"] = True
                return 204, None
        reactions.append({"emoji": {"id": None, "name": emoji}, "count": 1, "me": True})
        return 204, None

    async def trigger_typing(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        self._channel(params)
        return 204, None

    async def get_guild(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        guild = self.fake.guilds.get(int(params["guild_id"]))
        if guild is None:
            raise unknown("Guild", 10004)
        payload = guild.payload()
        if request.query.get("with_counts") in ("1", "true", "True"):
            payload.update(
                approximate_member_count=len(guild.members), approximate_presence_count=0
            )
        return 200, payload

    async def get_guild_channels(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        guild = self.fake.guilds.get(int(params["guild_id"]))
        if guild is None:
            raise unknown("Guild", 10004)
        return 200, [channel.payload() for channel in guild.channels.values()]

    async def get_member(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        guild = self.fake.guilds.get(int(params["guild_id"]))
        if guild is None:
            raise unknown("Guild", 10004)
        member = guild.members.get(int(params["user_id"]))
        if member is None:
            raise unknown("Member", 10007)
        return 200, member.payload()
