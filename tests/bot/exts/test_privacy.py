"""/privacy through the fake Discord: export works in a DM with the bot (no server)."""

from __future__ import annotations

import json

import pytest

from tests.bot.conftest import World
from tests.bot.exts.test_train import upload_corpus
from tests.fakediscord import InvalidInvocation


async def test_export_in_a_dm_returns_everything_across_servers(world: World) -> None:
    await upload_corpus(world)  # the admin's upload in the server
    dm = world.fake.dm_channel(world.admin)
    handle = await world.fake.invoke_slash(None, dm, world.admin, "privacy", subcommand="export")
    await handle.wait_response(timeout_s=30)
    assert handle.deferred and handle.ephemeral
    edit = await handle.wait_edit(timeout_s=30)
    assert edit.content == "Here is everything Parrot stores about you."
    [export] = edit.files
    assert export.filename == f"parrot-export-{world.admin.id}.json"
    data = json.loads(export.data)
    assert data["user_id"] == world.admin.id
    assert [(d["server_id"], d["filename"]) for d in data["documents"]] == [
        (world.guild.id, "corpus.txt")
    ]


async def test_server_only_commands_cannot_be_run_in_a_dm(world: World) -> None:
    dm = world.fake.dm_channel(world.admin)
    with pytest.raises(InvalidInvocation, match="not available in DMs"):
        await world.fake.invoke_slash(None, dm, world.admin, "train", subcommand="start")
