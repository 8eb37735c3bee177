"""The REST half of the fake: routes under /api/v10 that a discord.py bot calls.

Every request is recorded (`FakeDiscord.requests`) and checked against the OpenAPI spec
before it is routed. Routes the fake does not implement answer 404 and are recorded in
`FakeDiscord.unexpected_requests`, which fails the test at teardown. The routes themselves
live in the `routes_*` modules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import BodyPartReader, web

from tests.fakediscord.bot_messages import BotMessages
from tests.fakediscord.openapi import SpecViolation
from tests.fakediscord.records import RecordedRequest, UploadedFile
from tests.fakediscord.routes_account import AccountRoutes
from tests.fakediscord.routes_channels import ChannelRoutes
from tests.fakediscord.routes_commands import CommandRoutes
from tests.fakediscord.routes_interactions import InteractionRoutes
from tests.fakediscord.routing import ApiError, Handler, RateLimitedError, Result

if TYPE_CHECKING:
    from tests.fakediscord.server import FakeDiscord

SNOWFLAKE = r"(?P<{}>\d+)"
FREE_TEXT_PARAMETERS = ("token", "emoji")  # path parameters that are not snowflakes


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
        messages = BotMessages(fake)
        groups = (
            AccountRoutes(fake, messages),
            CommandRoutes(fake, messages),
            InteractionRoutes(fake, messages),
            ChannelRoutes(fake, messages),
        )
        self.routes = [
            Route(method, template, _pattern(template), handler, auth)
            for group in groups
            for method, template, handler, auth in group.routes()
        ]

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
        if status < 300:
            fake.internal_errors.extend(
                f"{request.method} {path} answered {status} with a body that breaks the spec: {problem}"
                for problem in fake.validator.validate_response(request.method, path, status, body)
            )
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
