"""The REST half of the fake: routes under /api/v10 that a discord.py bot calls.

Every request is recorded (`FakeDiscord.requests`) and checked against the OpenAPI spec
before it is routed. Routes the fake does not implement answer 404 and are recorded in
`FakeDiscord.unexpected_requests`, which fails the test at teardown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.fakediscord.entities import FakeChannel, Permission
from tests.fakediscord.interactions import CallbackType, InteractionHandle, InteractionType
from tests.fakediscord.messages import (
    EPHEMERAL_FLAG,
    LOADING_FLAG,
    MessageType,
    StoredAttachment,
    apply_edit,
    attachment_files,
    build_message,
)
from tests.fakediscord.openapi import SpecViolation
from tests.fakediscord.records import MessageKind, RecordedRequest, SentMessage, UploadedFile

if TYPE_CHECKING:
    from tests.fakediscord.server import FakeDiscord

Payload = dict[str, Any]
Result = tuple[int, Any]
Handler = Callable[[RecordedRequest, dict[str, str]], Awaitable[Result]]

SNOWFLAKE = r"(?P<{}>\d+)"
BOT_CONTENT_LIMIT = 2000
FREE_TEXT_PARAMETERS = ("token", "emoji")  # path parameters that are not snowflakes


class ApiError(Exception):
    """An error answer in Discord's shape: `{"code": ..., "message": ...}`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RateLimitedError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.3f}s")
        self.retry_after = retry_after


def unknown(what: str, code: int) -> ApiError:
    return ApiError(404, code, f"Unknown {what}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    needs_bot_auth: bool


def _rate_limited_response(retry_after: float) -> web.Response:
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    headers = {
        "Via": "1.1 google",  # discord.py treats a 429 without it as a Cloudflare ban
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Scope": "user",
        "Retry-After": str(max(1, round(retry_after))),
    }
    return web.Response(
        status=429, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )


def _pattern(template: str) -> re.Pattern[str]:
    """`/channels/{channel_id}` -> regex with named groups; `{token}` matches any segment."""

    def group(found: re.Match[str]) -> str:
        name = found.group(1)
        return f"(?P<{name}>[^/]+)" if name in FREE_TEXT_PARAMETERS else SNOWFLAKE.format(name)

    return re.compile(re.sub(r"\{(\w+)\}", group, template))


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/gateway", self.get_gateway, False),
            ("GET", "/gateway/bot", self.get_gateway_bot, True),
            ("GET", "/users/@me", self.get_current_user, True),
            ("GET", "/users/{user_id}", self.get_user, True),
            ("DELETE", "/users/@me/guilds/{guild_id}", self.leave_guild, True),
            ("POST", "/users/@me/channels", self.open_dm, True),
            ("GET", "/applications/@me", self.get_application, True),
            ("GET", "/oauth2/applications/@me", self.get_application, True),
            ("GET", "/applications/{app_id}/commands", self.get_commands, True),
            ("PUT", "/applications/{app_id}/commands", self.put_commands, True),
            ("POST", "/applications/{app_id}/commands", self.post_command, True),
            ("GET", "/applications/{app_id}/commands/{command_id}", self.get_command, True),
            ("PATCH", "/applications/{app_id}/commands/{command_id}", self.patch_command, True),
            ("DELETE", "/applications/{app_id}/commands/{command_id}", self.delete_command, True),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands, True),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands, True),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self.post_command, True),
            (
                "POST",
                "/interactions/{interaction_id}/{token}/callback",
                self.interaction_callback,
                False,
            ),
            (
                "GET",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.get_webhook_message,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.delete_webhook_message,
                False,
            ),
            ("POST", "/webhooks/{app_id}/{token}", self.create_followup, False),
            (
                "GET",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.get_webhook_message,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.delete_webhook_message,
                False,
            ),
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
        self.routes = [Route(m, t, _pattern(t), h, auth) for m, t, h, auth in routes]

    # ------------------------------------------------------------------ plumbing

    async def handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        recorded, media_type, has_body = await self._read_request(request, path)
        fake = self.fake
        fake.requests.append(recorded)
        violations = fake.validator.validate(
            request.method,
            path,
            recorded.query,
            recorded.json,
            has_body=has_body,
            media_type=media_type,
        )
        user_agent = request.headers.get("User-Agent", "")
        if "Authorization" in request.headers and not user_agent.startswith("DiscordBot ("):
            # Discord requires "DiscordBot ($url, $versionNumber)" on bot-authenticated calls
            # (interaction webhooks are unauthenticated and discord.py sends aiohttp's there).
            violations.append(SpecViolation(request.method, path, f"bad User-Agent {user_agent!r}"))
        fake.spec_violations.extend(violations)
        try:
            if any(v.problem.startswith("body:") for v in violations):
                # Discord refuses malformed bodies before acting on them.
                raise ApiError(400, 50035, "Invalid Form Body")
            status, body = await self._route(recorded, request.headers.get("Authorization"))
        except ApiError as error:
            status, body = error.status, {"code": error.code, "message": error.message}
        except RateLimitedError as limited:
            recorded.status = 429
            fake.notify_change()
            return _rate_limited_response(limited.retry_after)
        except Exception as error:
            # A bug in the fake itself: fail the test loudly rather than confuse the client.
            fake.internal_errors.append(f"{recorded.method} {path}: {error!r}")
            status, body = 500, {"code": 0, "message": f"fake Discord crashed: {error!r}"}
        recorded.status, recorded.response = status, body
        fake.notify_change()
        if body is None:
            return web.Response(status=status)
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json"
        )

    async def handle_outside_api(self, request: web.Request) -> web.Response:
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers)
        )
        recorded.status = 404
        self.fake.requests.append(recorded)
        self.fake.unexpected_requests.append(recorded)
        self.fake.notify_change()
        return web.Response(status=404, text="not an API path")

    async def serve_attachment(self, request: web.Request) -> web.Response:
        attachment = self.fake.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404)
        return web.Response(
            body=attachment.data, content_type=attachment.content_type.split(";")[0]
        )

    async def _read_request(
        self, request: web.Request, path: str
    ) -> tuple[RecordedRequest, str, bool]:
        recorded = RecordedRequest(request.method, path, dict(request.query), dict(request.headers))
        media_type = request.content_type
        has_body = request.body_exists
        if media_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue  # nested multipart: discord.py never sends one
                name = part.name or ""
                data = await part.read(decode=False)
                if name == "payload_json":
                    recorded.json = json.loads(data)
                else:
                    recorded.files.append(
                        UploadedFile(
                            field_name=name,
                            filename=part.filename or name,
                            content_type=part.headers.get(
                                "Content-Type", "application/octet-stream"
                            ),
                            data=bytes(data),
                        )
                    )
        elif has_body:
            raw = await request.read()
            has_body = bool(raw)
            if raw:
                try:
                    recorded.json = json.loads(raw)
                except ValueError:
                    recorded.json = raw.decode(errors="replace")
        return recorded, media_type, has_body

    async def _route(self, recorded: RecordedRequest, authorization: str | None) -> Result:
        for route in self.routes:
            if route.method != recorded.method:
                continue
            found = route.regex.fullmatch(recorded.path)
            if found is None:
                continue
            if route.needs_bot_auth and authorization != f"Bot {self.fake.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            retry_after = self.fake.rate_limits.retry_after(
                recorded, route.template, found.groupdict()
            )
            if retry_after is not None:
                raise RateLimitedError(retry_after)
            return await route.handler(recorded, found.groupdict())
        self.fake.unexpected_requests.append(recorded)
        raise ApiError(
            404, 0, f"404: the fake does not implement {recorded.method} {recorded.path}"
        )

    # ------------------------------------------------------------------ gateway, users, apps

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
        self.fake._forget_guild(guild_id)
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
            "owner": fake.owner.payload(),
            "team": None,
            "bot": fake.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "approximate_guild_count": len(fake.guilds),
        }

    # ------------------------------------------------------------------ commands

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
        command["id"] = previous["id"] if previous else str(self.fake.ids.next_id())
        command["application_id"] = str(self.fake.application_id)
        command["version"] = str(self.fake.ids.next_id())
        if "guild_id" in params:
            command["guild_id"] = params["guild_id"]
        return command

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

    def _find_command(self, params: dict[str, str]) -> tuple[list[Payload], Payload]:
        commands = self._command_list(params)
        for command in commands:
            if command["id"] == params["command_id"]:
                return commands, command
        raise unknown("application command", 10063)

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

    # ------------------------------------------------------------------ interactions

    def _interaction(self, interaction_id: int, token: str) -> InteractionHandle:
        handle = self.fake.interactions.get(interaction_id)
        if handle is None or handle.token != token or handle.expired:
            raise unknown("interaction", 10062)
        return handle

    def _webhook_interaction(self, params: dict[str, str]) -> InteractionHandle:
        """The interaction behind a webhook token; Discord's errors for bad/expired/unacked ones."""
        if int(params["app_id"]) != self.fake.application_id:
            raise unknown("Webhook", 10015)
        handle = next(
            (h for h in self.fake.interactions.values() if h.token == params["token"]), None
        )
        if handle is None:
            raise unknown("Webhook", 10015)
        if handle.expired:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if not handle.callbacks:
            raise unknown("Webhook", 10015)
        return handle

    async def interaction_callback(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._interaction(int(params["interaction_id"]), params["token"])
        if handle.callbacks:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.fake.ack_deadline_s
        if deadline is not None and time.monotonic() - handle.dispatched_at > deadline:
            handle.acknowledged_late = True
            handle.responded_at = time.monotonic()
            raise unknown("interaction", 10062)
        body: Payload = request.json or {}
        callback_type = body.get("type")
        data: Payload = body.get("data") or {}
        self._enforce_content_limit(request, data)
        is_component = handle.type == InteractionType.MESSAGE_COMPONENT
        allowed = {
            CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.MODAL,
        }
        if is_component:
            allowed |= {CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE}
        if callback_type not in allowed:
            raise ApiError(
                400, 50035, f"Invalid Form Body: callback type {callback_type} not valid here"
            )
        handle.callbacks.append(body)
        handle.responded_at = time.monotonic()
        channel = self.fake.channels.get(int(handle.payload["channel_id"]))
        message: Payload | None = None
        if callback_type in (
            CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
        ):
            loading = callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            message = await self._create_bot_message(
                channel,
                data,
                request.files,
                handle=handle,
                loading=loading,
                message_type=MessageType.CHAT_INPUT_COMMAND
                if not is_component
                else MessageType.DEFAULT,
            )
            handle.original_message_id = int(message["id"])
            if not loading:
                self._record_sent(
                    MessageKind.INTERACTION_RESPONSE, data, request.files, message, handle
                )
        elif callback_type == CallbackType.UPDATE_MESSAGE:
            message = await self._edit_stored(handle.original_message_id, data, request.files)
            self._record_sent(MessageKind.INTERACTION_UPDATE, data, request.files, message, handle)
        elif callback_type == CallbackType.DEFERRED_UPDATE_MESSAGE:
            message = self.fake.messages.get(handle.original_message_id or 0)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        interaction: Payload = {"id": str(handle.id), "type": handle.type}
        result: Payload = {"interaction": interaction}
        if message is not None:
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=bool(message["flags"] & LOADING_FLAG),
                response_message_ephemeral=bool(message["flags"] & EPHEMERAL_FLAG),
            )
            if callback_type != CallbackType.DEFERRED_UPDATE_MESSAGE:
                result["resource"] = {"type": callback_type, "message": message}
        return 200, result

    async def get_webhook_message(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        handle = self._webhook_interaction(params)
        return 200, self._webhook_message(handle, params)

    async def edit_webhook_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._webhook_interaction(params)
        target = self._webhook_message(handle, params)
        data: Payload = request.json or {}
        self._enforce_content_limit(request, data)
        message = await self._edit_stored(int(target["id"]), data, request.files)
        is_original = (
            "message_id" not in params or int(params["message_id"]) == handle.original_message_id
        )
        kind = MessageKind.ORIGINAL_EDIT if is_original else MessageKind.FOLLOWUP_EDIT
        self._record_sent(kind, data, request.files, message, handle)
        return 200, message

    async def delete_webhook_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._webhook_interaction(params)
        target = self._webhook_message(handle, params)
        await self._delete_stored(target)
        return 204, None

    async def create_followup(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        handle = self._webhook_interaction(params)
        data: Payload = request.json or {}
        self._enforce_content_limit(request, data)
        channel = self.fake.channels.get(int(handle.payload["channel_id"]))
        message = await self._create_bot_message(
            channel, data, request.files, handle=handle, loading=False
        )
        self._record_sent(MessageKind.FOLLOWUP, data, request.files, message, handle)
        if request.query.get("wait") in ("1", "true", "True"):
            return 200, message
        return 204, None

    def _webhook_message(self, handle: InteractionHandle, params: dict[str, str]) -> Payload:
        message_id = (
            int(params["message_id"]) if "message_id" in params else handle.original_message_id
        )
        message = self.fake.messages.get(message_id or 0)
        if message is None:
            raise unknown("Message", 10008)
        return message

    # ------------------------------------------------------------------ channels and guilds

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
        self._enforce_content_limit(request, data)
        if not (
            data.get("content")
            or data.get("embeds")
            or request.files
            or data.get("sticker_ids")
            or data.get("components")
            or data.get("poll")
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message = await self._create_bot_message(
            channel, data, request.files, handle=None, loading=False
        )
        self._record_sent(MessageKind.CHANNEL_MESSAGE, data, request.files, message, None)
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
        self._enforce_content_limit(request, data)
        message = await self._edit_stored(int(target["id"]), data, request.files)
        self._record_sent(MessageKind.CHANNEL_EDIT, data, request.files, message, None)
        return 200, message

    async def delete_channel_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        target = self._channel_message(params)
        if target["author"]["id"] != str(self.fake.bot_user.id):
            self._require(self._channel(params), Permission.MANAGE_MESSAGES)
        await self._delete_stored(target)
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

    # ------------------------------------------------------------------ message storage

    def _enforce_content_limit(self, request: RecordedRequest, data: Payload) -> None:
        """Bots may send at most 2,000 characters; the spec allows 4,000 (a Nitro user limit)."""
        content = data.get("content")
        if isinstance(content, str) and len(content) > BOT_CONTENT_LIMIT:
            problem = (
                f"content has {len(content)} characters; Discord allows bots {BOT_CONTENT_LIMIT}"
            )
            self.fake.spec_violations.append(SpecViolation(request.method, request.path, problem))
            raise ApiError(400, 50035, f"Invalid Form Body: {problem}")

    def _store_files(self, files: list[UploadedFile], data: Payload) -> list[StoredAttachment]:
        stored = []
        for file, description in attachment_files(files, data):
            attachment = self.fake.make_attachment(file.filename, file.data, file.content_type)
            if description:
                attachment = StoredAttachment(**{**attachment.__dict__, "description": description})
                self.fake.attachments[attachment.id] = attachment
            stored.append(attachment)
        return stored

    async def _create_bot_message(
        self,
        channel: FakeChannel | None,
        data: Payload,
        files: list[UploadedFile],
        *,
        handle: InteractionHandle | None,
        loading: bool,
        message_type: int = MessageType.DEFAULT,
    ) -> Payload:
        if channel is None:
            raise unknown("Channel", 10003)
        fake = self.fake
        guild = fake.guilds.get(channel.guild_id) if channel.guild_id else None
        flags = (data.get("flags") or 0) & ~LOADING_FLAG
        if loading:
            flags |= LOADING_FLAG
        metadata = None
        if handle is not None:
            member = handle.payload.get("member") or {}
            metadata = {
                "id": str(handle.id),
                "type": handle.type,
                "user": member.get("user"),
                "authorizing_integration_owners": handle.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
        message = build_message(
            message_id=fake.ids.next_id(),
            channel=channel,
            guild=guild,
            author=fake.bot_user,
            content="" if loading else data.get("content") or "",
            users=fake.users,
            attachments=self._store_files(files, data),
            embeds=data.get("embeds"),
            components=data.get("components"),
            flags=flags,
            message_type=message_type,
            webhook_id=fake.application_id if handle is not None else None,
            application_id=fake.application_id if handle is not None else None,
            interaction_metadata=metadata,
        )
        fake.messages[int(message["id"])] = message
        if not flags & EPHEMERAL_FLAG:
            await fake._dispatch_message_event("MESSAGE_CREATE", message)
        return message

    async def _edit_stored(
        self, message_id: int | None, data: Payload, files: list[UploadedFile]
    ) -> Payload:
        message = self.fake.messages.get(message_id or 0)
        if message is None:
            raise unknown("Message", 10008)
        apply_edit(message, data, self._store_files(files, data), self.fake.users)
        if not message["flags"] & EPHEMERAL_FLAG:
            await self.fake._dispatch_message_event("MESSAGE_UPDATE", message)
        return message

    async def _delete_stored(self, message: Payload) -> None:
        self.fake.messages.pop(int(message["id"]), None)
        if not message["flags"] & EPHEMERAL_FLAG:
            event: Payload = {"id": message["id"], "channel_id": message["channel_id"]}
            if "guild_id" in message:
                event["guild_id"] = message["guild_id"]
            await self.fake._dispatch_guild_message_event("MESSAGE_DELETE", event)

    def _record_sent(
        self,
        kind: MessageKind,
        data: Payload,
        files: list[UploadedFile],
        message: Payload,
        handle: InteractionHandle | None,
    ) -> None:
        self.fake.record_sent(
            SentMessage(
                kind=kind,
                payload=data,
                files=list(files),
                channel_id=int(message["channel_id"]),
                message_id=int(message["id"]),
                interaction_id=handle.id if handle is not None else None,
            )
        )
