"""Application command registration: what `CommandTree.sync()` sends, stored for `invoke_slash`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakediscord.records import RecordedRequest
from tests.fakediscord.routing import ApiError, Payload, Result, RouteSpec, unknown

if TYPE_CHECKING:
    from tests.fakediscord.bot_messages import BotMessages
    from tests.fakediscord.server import FakeDiscord


class CommandRoutes:
    """Global and guild commands: GET/PUT/POST lists, GET/PATCH/DELETE one."""

    def __init__(self, fake: FakeDiscord, messages: BotMessages) -> None:
        self.fake = fake
        self.messages = messages

    def routes(self) -> list[RouteSpec]:
        return [
            ("GET", "/applications/{app_id}/commands", self.get_commands, True),
            ("PUT", "/applications/{app_id}/commands", self.put_commands, True),
            ("POST", "/applications/{app_id}/commands", self.post_command, True),
            ("GET", "/applications/{app_id}/commands/{command_id}", self.get_command, True),
            ("PATCH", "/applications/{app_id}/commands/{command_id}", self.patch_command, True),
            ("DELETE", "/applications/{app_id}/commands/{command_id}", self.delete_command, True),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands, True),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands, True),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self.post_command, True),
        ]

    def _check_app(self, params: dict[str, str]) -> None:
        if int(params["app_id"]) != self.fake.application_id:
            raise unknown("Application", 10002)

    def _command_list(self, params: dict[str, str]) -> list[Payload]:
        self._check_app(params)
        if "guild_id" not in params:
            return self.fake.global_commands
        guild_id = int(params["guild_id"])
        if guild_id not in self.fake.guilds:
            raise ApiError(403, 50001, "Missing Access")
        return self.fake.guild_commands.setdefault(guild_id, [])

    def _stored_command(
        self, body: Payload, params: dict[str, str], existing: list[Payload]
    ) -> Payload:
        previous = next(
            (
                c
                for c in existing
                if c["name"] == body["name"] and c.get("type", 1) == body.get("type", 1)
            ),
            None,
        )
        command = dict(body)
        command.setdefault("type", 1)
        command.setdefault("description", "")
        command.setdefault("options", [])
        command.setdefault("default_member_permissions", None)
        command.setdefault("nsfw", False)
        if isinstance(command["default_member_permissions"], int):
            # Accepted as an integer, always returned as a string.
            command["default_member_permissions"] = str(command["default_member_permissions"])
        if command.get("integration_types") is None:
            command["integration_types"] = [0]  # Discord's default: installed to servers
        command["id"] = previous["id"] if previous else str(self.fake.ids.next_id())
        command["application_id"] = str(self.fake.application_id)
        command["version"] = str(self.fake.ids.next_id())
        if "guild_id" in params:
            command["guild_id"] = params["guild_id"]
        return command

    def _find_command(self, params: dict[str, str]) -> tuple[list[Payload], Payload]:
        commands = self._command_list(params)
        for command in commands:
            if command["id"] == params["command_id"]:
                return commands, command
        raise unknown("application command", 10063)

    async def get_commands(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        return 200, self._command_list(params)

    async def put_commands(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        existing = self._command_list(params)
        body = request.json or []
        names = [(c.get("name"), c.get("type", 1)) for c in body]
        if len(names) != len(set(names)):
            raise ApiError(400, 50035, "Invalid Form Body: duplicate command names")
        commands = [self._stored_command(c, params, existing) for c in body]
        existing[:] = commands
        return 200, commands

    async def post_command(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        existing = self._command_list(params)
        command = self._stored_command(request.json or {}, params, existing)
        existing[:] = [c for c in existing if c["id"] != command["id"]] + [command]
        return 201, command

    async def get_command(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        return 200, self._find_command(params)[1]

    async def patch_command(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        _, command = self._find_command(params)
        command.update(request.json or {})
        return 200, command

    async def delete_command(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        commands, command = self._find_command(params)
        commands.remove(command)
        return 204, None
