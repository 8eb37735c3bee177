"""Interactions the fake sends (slash commands, button clicks) and what the bot answered.

`build_command_data` turns a test's friendly `options={"start": "Once upon"}` into the
`data.options` / `data.resolved` Discord would send, typed by the command the bot
*registered*, so a test cannot accidentally send a payload Discord never would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakediscord.entities import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser
from tests.fakediscord.messages import StoredAttachment, iter_components
from tests.fakediscord.records import SentMessage

if TYPE_CHECKING:
    from tests.fakediscord.inspection import Inspection

Payload = dict[str, Any]
POLL_INTERVAL_S = 0.01


class InteractionType:
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3


class InteractionContext:
    """Where an interaction happened (`context`; a command's `contexts` lists where it may)."""

    GUILD = 0
    BOT_DM = 1
    PRIVATE_CHANNEL = 2


class CallbackType:
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE_RESULT = 8
    MODAL = 9


class ComponentType:
    ACTION_ROW = 1
    BUTTON = 2
    STRING_SELECT = 3


class OptionType:
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


SCALAR_NAMES = {
    OptionType.STRING: "a string",
    OptionType.INTEGER: "an integer",
    OptionType.NUMBER: "a number",
    OptionType.BOOLEAN: "a boolean",
}


class InvalidInvocation(ValueError):
    """The test asked for an interaction Discord's client would never send."""


@dataclass
class InteractionHandle:
    """One interaction the fake dispatched, and everything the bot did with its token.

    - `callbacks`: every POST .../callback body (`{"type": 4, "data": {...}}`), normally one.
    - `edits`: PATCHes of the original response; `followups`: followup messages sent.
    - `response_latency`: seconds from dispatch to the first callback (None if none yet).
    """

    id: int
    token: str
    payload: Payload
    fake: Inspection = field(repr=False, compare=False)
    dispatched_at: float = field(default_factory=time.monotonic)
    responded_at: float | None = None
    callbacks: list[Payload] = field(default_factory=list)
    edits: list[SentMessage] = field(default_factory=list)
    followups: list[SentMessage] = field(default_factory=list)
    original_message_id: int | None = None
    expired: bool = False
    acknowledged_late: bool = False

    @property
    def type(self) -> int:
        return int(self.payload["type"])

    @property
    def response(self) -> Payload | None:
        """The first callback body, or None before the bot acknowledged."""
        return self.callbacks[0] if self.callbacks else None

    @property
    def response_type(self) -> int | None:
        return int(self.callbacks[0]["type"]) if self.callbacks else None

    @property
    def response_latency(self) -> float | None:
        return None if self.responded_at is None else self.responded_at - self.dispatched_at

    @property
    def deferred(self) -> bool:
        return self.response_type in (
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_UPDATE_MESSAGE,
        )

    @property
    def ephemeral(self) -> bool:
        """Whether the response (message or deferral) was ephemeral."""
        data = (self.response or {}).get("data") or {}
        return bool((data.get("flags") or 0) & 64)

    @property
    def original_message(self) -> Payload | None:
        """The response message as it stands now (after edits), or None."""
        if self.original_message_id is None:
            return None
        return self.fake.messages.get(self.original_message_id)

    @property
    def content(self) -> str | None:
        """Convenience: the response message's current content."""
        message = self.original_message
        return None if message is None else message.get("content")

    @property
    def sent_messages(self) -> list[SentMessage]:
        """Every message payload sent with this interaction's token, in order."""
        return [m for m in self.fake.sent if m.interaction_id == self.id]

    async def wait_response(self, timeout_s: float = 5.0) -> Payload:
        """Wait for the bot's callback (ack); returns its body."""
        await self.fake.wait_for(
            lambda: bool(self.callbacks), timeout_s, what=f"callback for {self}"
        )
        return self.callbacks[0]

    async def wait_edit(
        self, predicate: Callable[[SentMessage], bool] | None = None, timeout_s: float = 5.0
    ) -> SentMessage:
        """Wait for an edit of the original response (matching `predicate` if given)."""
        return await self._wait_in(self.edits, predicate, timeout_s, "edit")

    async def wait_followup(
        self, predicate: Callable[[SentMessage], bool] | None = None, timeout_s: float = 5.0
    ) -> SentMessage:
        """Wait for a followup message (matching `predicate` if given)."""
        return await self._wait_in(self.followups, predicate, timeout_s, "followup")

    async def _wait_in(
        self,
        items: list[SentMessage],
        predicate: Callable[[SentMessage], bool] | None,
        timeout_s: float,
        what: str,
    ) -> SentMessage:
        def found() -> SentMessage | None:
            return next((item for item in items if predicate is None or predicate(item)), None)

        await self.fake.wait_for(lambda: found() is not None, timeout_s, what=f"{what} for {self}")
        result = found()
        assert result is not None
        return result

    def __str__(self) -> str:
        name = (self.payload.get("data") or {}).get("name") or (self.payload.get("data") or {}).get(
            "custom_id"
        )
        return f"interaction {self.id} ({name})"


@dataclass
class CommandWorld:
    """What option conversion needs to know about the fake's world."""

    guild: FakeGuild | None
    # The invoking user's permissions in a channel (Discord puts these on resolved channels).
    invoker_permissions: Callable[[FakeChannel], int]
    attachment_factory: Callable[[str, bytes, str], StoredAttachment]


def build_command_data(
    command: Payload,
    options: Mapping[str, Any],
    subcommand: str | None,
    world: CommandWorld,
    *,
    enforce_constraints: bool,
) -> Payload:
    """`data` for a type-2 interaction invoking `command` (as registered) with `options`."""
    resolved: dict[str, dict[str, Payload]] = {}
    schema_options: list[Payload] = command.get("options") or []
    path = subcommand.split() if subcommand else []
    top: list[Payload] = []
    container = top
    for name in path:
        option = _find(schema_options, name, command["name"])
        if option["type"] not in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP):
            raise InvalidInvocation(f"{name!r} is not a subcommand of /{command['name']}")
        nested: Payload = {"name": name, "type": option["type"], "options": []}
        container.append(nested)
        container = nested["options"]
        schema_options = option.get("options") or []
    if any(
        o["type"] in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP) for o in schema_options
    ):
        names = [o["name"] for o in schema_options]
        raise InvalidInvocation(f"/{command['name']} needs a subcommand: one of {names}")
    label = " ".join([command["name"], *path])
    known = {o["name"]: o for o in schema_options}
    for name, value in options.items():
        if name not in known:
            raise InvalidInvocation(f"/{label} has no option {name!r} (options: {sorted(known)})")
        container.append(_option_value(known[name], value, world, resolved, enforce_constraints))
    missing = [o["name"] for o in schema_options if o.get("required") and o["name"] not in options]
    if missing and enforce_constraints:
        raise InvalidInvocation(f"/{label} is missing required options {missing}")
    data: Payload = {
        "id": command["id"],
        "name": command["name"],
        "type": command.get("type", 1),
        "options": top,
    }
    if resolved:
        data["resolved"] = resolved
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    return data


def _find(options: list[Payload], name: str, parent: str) -> Payload:
    for option in options:
        if option["name"] == name:
            return option
    raise InvalidInvocation(f"/{parent} has no {name!r} (has: {[o['name'] for o in options]})")


def _option_value(
    option: Payload,
    value: Any,
    world: CommandWorld,
    resolved: dict[str, dict[str, Payload]],
    enforce: bool,
) -> Payload:
    kind = option["type"]
    name = option["name"]
    if kind in (OptionType.STRING, OptionType.INTEGER, OptionType.NUMBER, OptionType.BOOLEAN):
        if enforce:
            _check_scalar(option, value)
        return {"name": name, "type": kind, "value": value}
    if kind == OptionType.USER or (
        kind == OptionType.MENTIONABLE and not isinstance(value, FakeRole)
    ):
        user = value.user if isinstance(value, FakeMember) else value
        if not isinstance(user, FakeUser):
            raise InvalidInvocation(f"option {name!r} needs a FakeUser/FakeMember, got {value!r}")
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        member = world.guild.members.get(user.id) if world.guild else None
        if member is not None and world.guild is not None:
            member_payload = member.payload(with_user=False)
            member_payload["permissions"] = str(world.guild.permissions_of(user.id))
            resolved.setdefault("members", {})[str(user.id)] = member_payload
        return {"name": name, "type": kind, "value": str(user.id)}
    if kind in (OptionType.ROLE, OptionType.MENTIONABLE):
        if not isinstance(value, FakeRole):
            raise InvalidInvocation(f"option {name!r} needs a FakeRole, got {value!r}")
        resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        return {"name": name, "type": kind, "value": str(value.id)}
    if kind == OptionType.CHANNEL:
        if not isinstance(value, FakeChannel):
            raise InvalidInvocation(f"option {name!r} needs a FakeChannel, got {value!r}")
        allowed_types = option.get("channel_types")
        if enforce and allowed_types and value.type not in allowed_types:
            raise InvalidInvocation(f"option {name!r} takes channel types {allowed_types}")
        channel_payload = value.payload()
        channel_payload["permissions"] = str(world.invoker_permissions(value))
        resolved.setdefault("channels", {})[str(value.id)] = channel_payload
        return {"name": name, "type": kind, "value": str(value.id)}
    if kind == OptionType.ATTACHMENT:
        attachment = _as_attachment(value, world)
        resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
        return {"name": name, "type": kind, "value": str(attachment.id)}
    raise InvalidInvocation(f"option {name!r} has unsupported type {kind}")


def _as_attachment(value: Any, world: CommandWorld) -> StoredAttachment:
    """Accept a StoredAttachment, or `(filename, bytes)` / `(filename, bytes, content_type)`."""
    if isinstance(value, StoredAttachment):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3):
        filename, data, *content_type = value
        default_type = (
            "text/plain; charset=utf-8"
            if str(filename).endswith(".txt")
            else "application/octet-stream"
        )
        return world.attachment_factory(
            str(filename), bytes(data), content_type[0] if content_type else default_type
        )
    raise InvalidInvocation(
        f"attachment options take (filename, bytes[, content_type]), got {value!r}"
    )


def _check_scalar(option: Payload, value: Any) -> None:
    name, kind = option["name"], option["type"]
    expected: dict[int, tuple[type, ...]] = {
        OptionType.STRING: (str,),
        OptionType.INTEGER: (int,),
        OptionType.NUMBER: (int, float),
        OptionType.BOOLEAN: (bool,),
    }
    if not isinstance(value, expected[kind]) or (
        kind != OptionType.BOOLEAN and isinstance(value, bool)
    ):
        raise InvalidInvocation(f"option {name!r} needs {SCALAR_NAMES[kind]}, got {value!r}")
    choices = option.get("choices")
    if choices and value not in [choice["value"] for choice in choices]:
        raise InvalidInvocation(f"option {name!r} must be one of {[c['value'] for c in choices]}")
    if kind == OptionType.STRING:
        if len(value) < option.get("min_length", 0) or len(value) > option.get("max_length", 6000):
            raise InvalidInvocation(
                f"option {name!r} length {len(value)} outside "
                f"{option.get('min_length', 0)}..{option.get('max_length', 6000)} "
                "(pass enforce_constraints=False to send it anyway)"
            )
    elif kind in (OptionType.INTEGER, OptionType.NUMBER):
        low, high = option.get("min_value"), option.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidInvocation(
                f"option {name!r} value {value} outside {low}..{high} "
                "(pass enforce_constraints=False to send it anyway)"
            )


def find_component(components: list[Payload], custom_id: str) -> Payload | None:
    """The component with `custom_id`, wherever it sits in the tree."""
    return next((c for c in iter_components(components) if c.get("custom_id") == custom_id), None)


def button_ids(components: list[Payload]) -> dict[str, str]:
    """Button label -> custom_id for the interactive buttons in a component tree."""
    return {
        c["label"]: c["custom_id"]
        for c in iter_components(components)
        if c.get("type") == ComponentType.BUTTON and "custom_id" in c and "label" in c
    }


async def wait_until(
    predicate: Callable[[], bool], changed: Callable[[], asyncio.Event], timeout_s: float, what: str
) -> None:
    """Re-check `predicate` whenever the fake records something, until true or `timeout_s`.

    Also re-checks every few milliseconds, because predicates often look at the bot's own
    state, which changes after the fake's last frame without the fake noticing.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        event = changed()
        try:
            await asyncio.wait_for(event.wait(), timeout=min(remaining, POLL_INTERVAL_S))
        except TimeoutError:
            continue
