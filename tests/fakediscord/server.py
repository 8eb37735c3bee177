"""`FakeDiscord`: a loopback Discord (REST + gateway) that a real discord.py client talks to.

Build the world (`add_guild`, `add_text_channel`, `add_user`, `add_member`), start the
server, connect a bot with `tests.fakediscord.client.run_bot`, then drive it as users would
(`send_message`, `invoke_slash`, `click_button`, ...) and assert on what it sent
(`messages_sent()`, `InteractionHandle.edits`, `registered_command()`, ...). Every request
is checked against Discord's OpenAPI spec; problems land in `spec_violations`.

The API is layered, one module each: `world.World` (state and builders) <-
`inspection.Inspection` (records, queries, waits) <- `driver.GatewayEvents` and
`driver.UserActions` (what Discord and its users send the bot) <- `FakeDiscord` (this
module: the HTTP server's lifecycle and addresses, and the gateway wired to the rest).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.fakediscord.driver import UserActions
from tests.fakediscord.entities import HasValue, Permission
from tests.fakediscord.gateway import GatewayConfig, GatewayServer, Intent
from tests.fakediscord.interaction_payloads import ATTACHMENT_SIZE_LIMIT
from tests.fakediscord.rest import RestApi

DEFAULT_TOKEN = "fake.bot.token"  # a test token, not a secret


class FakeDiscord(UserActions):
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
        super().__init__(
            bot_name=bot_name,
            bot_permissions=bot_permissions,
            spec_path=spec_path,
            ack_deadline_s=ack_deadline_s,
        )
        self.token = token
        self.gateway = GatewayServer(
            GatewayConfig(token, heartbeat_interval_ms, enabled_privileged_intents),
            on_identified=self.send_ready,
            on_member_request=self.send_member_chunk,
            on_change=self.notify_change,
        )
        self._runner: web.AppRunner | None = None
        self._port = 0

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
