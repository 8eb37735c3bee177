"""A loopback fake of Discord (REST + gateway) for testing a real discord.py bot.

See README.md in this folder. The usual entry points:

    from tests.fakediscord import FakeDiscord, run_bot
"""

from tests.fakediscord.client import pointed_at, run_bot
from tests.fakediscord.entities import (
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    OverwriteType,
    Permission,
    PermissionOverwrite,
)
from tests.fakediscord.gateway import Intent
from tests.fakediscord.interactions import (
    CallbackType,
    InteractionHandle,
    InvalidInvocation,
    OptionType,
)
from tests.fakediscord.mentions import Pings, pings_of
from tests.fakediscord.messages import StoredAttachment
from tests.fakediscord.openapi import OpenApiValidator, SpecViolation
from tests.fakediscord.records import MessageKind, RecordedRequest, SentMessage, UploadedFile
from tests.fakediscord.server import FakeDiscord

__all__ = [
    "CallbackType",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Intent",
    "InteractionHandle",
    "InvalidInvocation",
    "MessageKind",
    "OpenApiValidator",
    "OptionType",
    "OverwriteType",
    "Permission",
    "PermissionOverwrite",
    "Pings",
    "RecordedRequest",
    "SentMessage",
    "SpecViolation",
    "StoredAttachment",
    "UploadedFile",
    "pings_of",
    "pointed_at",
    "run_bot",
]
