"""What a test asserts on: what the bot sent and asked for, and everything that went wrong.

`Inspection` adds the records the REST side fills in (`requests`, `sent`, `spec_violations`,
`unexpected_requests`, `internal_errors`) to the `World`, and the queries and waits a test
uses on them (`messages_sent`, `requests_to`, `problems`, `assert_clean`, `wait_for`, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakediscord.entities import FakeChannel, FakeGuild, HasValue
from tests.fakediscord.gateway import GatewayServer
from tests.fakediscord.interactions import button_ids, wait_until
from tests.fakediscord.mentions import Pings, pings_of
from tests.fakediscord.openapi import OpenApiValidator, SpecViolation
from tests.fakediscord.ratelimits import RateLimiter
from tests.fakediscord.records import MessageKind, RecordedRequest, SentMessage
from tests.fakediscord.world import MessageRef, Payload, World


class Inspection(World):
    """The world plus what happened in it, and the test-facing queries on that."""

    # The websocket side; `FakeDiscord` creates it (its callbacks are the driver's).
    gateway: GatewayServer

    def __init__(
        self,
        *,
        bot_name: str,
        bot_permissions: int | HasValue,
        spec_path: Path | None,
        ack_deadline_s: float | None,
    ) -> None:
        super().__init__(bot_name=bot_name, bot_permissions=bot_permissions)
        self.ack_deadline_s = ack_deadline_s
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[SpecViolation] = []
        self.unexpected_requests: list[RecordedRequest] = []
        self.internal_errors: list[str] = []
        self.rate_limits = RateLimiter()
        self.sent: list[SentMessage] = []
        self.validator = OpenApiValidator(spec_path)
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ queries

    def registered_command(self, name: str, *, guild: FakeGuild | None = None) -> Payload | None:
        """A command as the bot registered it (guild-specific first, then global)."""
        candidates = [
            *(self.guild_commands.get(guild.id, []) if guild else []),
            *self.global_commands,
        ]
        return next((c for c in candidates if c["name"] == name), None)

    def messages_sent(
        self, kind: MessageKind | None = None, *, channel: FakeChannel | None = None
    ) -> list[SentMessage]:
        """Every message payload the bot created or edited (callbacks, followups, edits,
        channel messages), in order; filter by `kind` and/or `channel`."""
        return [
            sent
            for sent in self.sent
            if (kind is None or sent.kind == kind)
            and (channel is None or sent.channel_id == channel.id)
        ]

    def channel_messages(self, channel: FakeChannel) -> list[Payload]:
        """The messages currently in `channel` (users' and the bot's), oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel.id)]

    @staticmethod
    def pings(sent: SentMessage) -> Pings:
        """Who this message would notify on real Discord (content × allowed_mentions)."""
        return pings_of(sent.content, sent.allowed_mentions)

    def buttons(self, message: MessageRef) -> dict[str, str]:
        """The message's buttons as label -> custom_id, e.g. `{"Regenerate": "gen:regen:…"}`."""
        return button_ids(self.find_message(message).get("components") or [])

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """Recorded requests by method and path prefix, e.g. `("PUT", "/applications/")`."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # ------------------------------------------------------------------ problems

    def take_spec_violations(self) -> list[SpecViolation]:
        """Return and clear the violations (for tests that provoke one on purpose)."""
        taken = list(self.spec_violations)
        self.spec_violations.clear()
        return taken

    def take_unexpected_requests(self) -> list[RecordedRequest]:
        """Return and clear requests to unimplemented routes (for tests that make one on purpose)."""
        taken = list(self.unexpected_requests)
        self.unexpected_requests.clear()
        return taken

    def problems(self) -> list[str]:
        """Readable lines for everything that should fail a test: spec violations, requests to
        routes the fake does not implement, gateway protocol errors."""
        lines = [f"OpenAPI violation: {v}" for v in self.spec_violations]
        lines += [f"unexpected request: {r.method} {r.path}" for r in self.unexpected_requests]
        lines += [f"gateway: {e}" for e in self.gateway.protocol_errors]
        lines += [f"fake Discord bug: {e}" for e in self.internal_errors]
        lines += [
            f"{handle} acknowledged after {handle.response_latency:.2f}s (> {self.ack_deadline_s}s)"
            for handle in self.interactions.values()
            if handle.acknowledged_late and handle.response_latency is not None
        ]
        return lines

    def assert_clean(self) -> None:
        problems = self.problems()
        if problems:
            raise AssertionError("fake Discord saw problems:\n  " + "\n  ".join(problems))

    def self_check(self, what: str, schema_name: str, instance: Any) -> None:
        """Gateway objects the fake sends must look like the spec's REST objects of that kind;
        where one does not, that is a bug in the fake (an `internal_errors` line)."""
        self.internal_errors.extend(
            f"{what} sent a {schema_name} that breaks the spec: {problem}"
            for problem in self.validator.validate_schema(schema_name, instance)
        )

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 5.0, *, what: str = "condition"
    ) -> None:
        """Wait until `predicate()` is true; re-checked whenever a request or event happens."""
        await wait_until(predicate, lambda: self._changed, timeout_s, what)

    async def wait_until_connected(self, timeout_s: float = 10.0) -> None:
        """Until every shard identified and got READY + its GUILD_CREATEs."""

        def all_connected() -> bool:
            sessions = self.gateway.sessions
            return bool(sessions) and len(sessions) == sessions[0].shard_count

        await self.wait_for(all_connected, timeout_s, what="gateway IDENTIFY from every shard")

    async def wait_until_disconnected(self, timeout_s: float = 10.0) -> None:
        """Until no shard is connected (after `run_bot` exits): what the world changes into
        from here is what the bot finds at its next READY, with no events for it."""
        await self.wait_for(
            lambda: not self.gateway.sessions, timeout_s, what="every shard to disconnect"
        )

    def notify_change(self) -> None:
        """Wake `wait_for` callers (called on every request and gateway frame)."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ used by the REST routes

    def record_sent(self, sent: SentMessage) -> None:
        self.sent.append(sent)
        if sent.interaction_id is not None:
            handle = self.interactions.get(sent.interaction_id)
            if handle is not None:
                if sent.kind == MessageKind.ORIGINAL_EDIT:
                    handle.edits.append(sent)
                elif sent.kind == MessageKind.FOLLOWUP:
                    handle.followups.append(sent)
