"""Building interaction payloads from registered commands, without a client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakediscord.entities import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser
from tests.fakediscord.interactions import (
    CommandWorld,
    InvalidInvocation,
    OptionType,
    build_command_data,
    find_component,
)
from tests.fakediscord.messages import StoredAttachment

GUILD_ID = 10 << 22


def _world() -> CommandWorld:
    guild = FakeGuild(id=GUILD_ID, name="g", owner_id=1)
    guild.roles[GUILD_ID] = FakeRole(GUILD_ID, GUILD_ID, "@everyone", 0)
    user = FakeUser(2, "member")
    guild.members[2] = FakeMember(user, GUILD_ID)

    def attachment(filename: str, data: bytes, content_type: str) -> StoredAttachment:
        return StoredAttachment(99, filename, content_type, data, f"http://x/{filename}")

    return CommandWorld(guild, lambda channel: 1024, attachment)


COMMAND: dict[str, Any] = {
    "id": "5",
    "name": "corpus",
    "type": 1,
    "options": [
        {
            "type": OptionType.SUB_COMMAND,
            "name": "upload",
            "description": "d",
            "options": [
                {
                    "type": OptionType.ATTACHMENT,
                    "name": "file",
                    "description": "d",
                    "required": True,
                }
            ],
        },
        {
            "type": OptionType.SUB_COMMAND_GROUP,
            "name": "channel",
            "description": "d",
            "options": [
                {
                    "type": OptionType.SUB_COMMAND,
                    "name": "add",
                    "description": "d",
                    "options": [
                        {
                            "type": OptionType.CHANNEL,
                            "name": "channel",
                            "description": "d",
                            "channel_types": [0],
                        },
                        {"type": OptionType.USER, "name": "who", "description": "d"},
                        {"type": OptionType.ROLE, "name": "role", "description": "d"},
                        {
                            "type": OptionType.STRING,
                            "name": "mode",
                            "description": "d",
                            "choices": [{"name": "a", "value": "a"}],
                        },
                        {
                            "type": OptionType.NUMBER,
                            "name": "temp",
                            "description": "d",
                            "min_value": 0.1,
                            "max_value": 2,
                        },
                    ],
                }
            ],
        },
    ],
}


def test_subcommand_group_with_resolved_objects() -> None:
    world = _world()
    channel = FakeChannel(3, GUILD_ID, "general")
    role = FakeRole(4, GUILD_ID, "mods", 0)
    data = build_command_data(
        COMMAND,
        {"channel": channel, "who": FakeUser(2, "member"), "role": role, "mode": "a", "temp": 0.5},
        "channel add",
        world,
        enforce_constraints=True,
    )
    [group] = data["options"]
    [sub] = group["options"]
    assert (group["name"], group["type"], sub["name"], sub["type"]) == ("channel", 2, "add", 1)
    assert [(o["name"], o["value"]) for o in sub["options"]] == [
        ("channel", "3"),
        ("who", "2"),
        ("role", "4"),
        ("mode", "a"),
        ("temp", 0.5),
    ]
    resolved = data["resolved"]
    assert resolved["channels"]["3"]["permissions"] == "1024"
    assert resolved["users"]["2"]["username"] == "member"
    assert "permissions" in resolved["members"]["2"]
    assert resolved["roles"]["4"]["name"] == "mods"


def test_attachment_from_bytes() -> None:
    data = build_command_data(
        COMMAND, {"file": ("a.txt", b"abc")}, "upload", _world(), enforce_constraints=True
    )
    assert data["options"][0]["options"] == [{"name": "file", "type": 11, "value": "99"}]
    assert data["resolved"]["attachments"]["99"]["size"] == 3


@pytest.mark.parametrize(
    ("options", "subcommand", "message"),
    [
        ({}, None, "needs a subcommand"),
        ({}, "upload", "missing required options \\['file'\\]"),
        ({"mode": "b"}, "channel add", "must be one of"),
        ({"temp": 3.0}, "channel add", "outside 0.1..2"),
        ({"temp": "hot"}, "channel add", "needs a number"),
        ({"nope": 1}, "channel add", "no option 'nope'"),
        ({}, "channel remove", "has no 'remove'"),
    ],
)
def test_invocations_discord_would_never_send_are_refused(
    options: dict[str, Any], subcommand: str | None, message: str
) -> None:
    with pytest.raises(InvalidInvocation, match=message):
        build_command_data(COMMAND, options, subcommand, _world(), enforce_constraints=True)


def test_constraints_can_be_bypassed_for_hostile_input_tests() -> None:
    data = build_command_data(
        COMMAND, {"temp": 99.0}, "channel add", _world(), enforce_constraints=False
    )
    assert data["options"][0]["options"][0]["options"] == [
        {"name": "temp", "type": 10, "value": 99.0}
    ]


def test_find_component_searches_action_rows() -> None:
    rows = [
        {"type": 1, "components": [{"type": 2, "custom_id": "a"}, {"type": 2, "custom_id": "b"}]}
    ]
    assert find_component(rows, "b") == {"type": 2, "custom_id": "b"}
    assert find_component(rows, "c") is None
