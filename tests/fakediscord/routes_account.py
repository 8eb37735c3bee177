"""Routes about the bot itself: gateway discovery, users, the application, DMs, leaving guilds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakediscord.records import RecordedRequest
from tests.fakediscord.routing import Payload, Result, RouteSpec, unknown

if TYPE_CHECKING:
    from tests.fakediscord.bot_messages import BotMessages
    from tests.fakediscord.server import FakeDiscord


class AccountRoutes:
    """GET /gateway/bot, /users/@me, /applications/@me and friends."""

    def __init__(self, fake: FakeDiscord, messages: BotMessages) -> None:
        self.fake = fake
        self.messages = messages

    def routes(self) -> list[RouteSpec]:
        return [
            ("GET", "/gateway", self.get_gateway, False),
            ("GET", "/gateway/bot", self.get_gateway_bot, True),
            ("GET", "/users/@me", self.get_current_user, True),
            ("GET", "/users/{user_id}", self.get_user, True),
            ("DELETE", "/users/@me/guilds/{guild_id}", self.leave_guild, True),
            ("POST", "/users/@me/channels", self.open_dm, True),
            ("GET", "/applications/@me", self.get_application, True),
            ("GET", "/oauth2/applications/@me", self.get_application, True),
        ]

    async def get_gateway(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        return 200, {"url": self.fake.gateway_url}

    async def get_gateway_bot(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        return 200, {
            "url": self.fake.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 0,
                "max_concurrency": 1,
            },
        }

    async def get_current_user(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        user = self.fake.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, flags=0, locale="en-US")
        return 200, user

    async def get_user(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        user = self.fake.users.get(int(params["user_id"]))
        if user is None:
            raise unknown("User", 10013)
        return 200, user.payload()

    async def leave_guild(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        guild_id = int(params["guild_id"])
        if guild_id not in self.fake.guilds:
            raise unknown("Guild", 10004)
        self.fake.left_guild_ids.append(guild_id)
        self.fake.forget_guild(guild_id)
        await self.fake.dispatch("GUILD_DELETE", {"id": str(guild_id)}, guild_id=guild_id)
        return 204, None

    async def open_dm(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        body: Payload = request.json or {}
        user = self.fake.users.get(int(body.get("recipient_id", 0)))
        if user is None:
            raise unknown("User", 10013)
        return 200, self.fake.dm_channel(user).payload()

    async def get_application(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        fake = self.fake
        return 200, {
            "id": str(fake.application_id),
            "name": fake.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 1 << 23,
            "flags_new": str(1 << 23),
            "role_connections_verification_url": None,
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": ["bot", "applications.commands"],
            "owner": fake.owner.payload(),
            "team": None,
            "bot": fake.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "approximate_guild_count": len(fake.guilds),
        }
