"""/privacy through the fake Discord: export works in a DM with the bot (no server), and a
heavy user's export arrives complete, as gzip JSON parts within the upload limit."""

from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bot.core.storage import corpus
from bot.core.storage.db import session_scope
from tests.bot.conftest import World
from tests.bot.exts.test_train import upload_corpus
from tests.fakediscord import (
    FakeChannel,
    FakeGuild,
    FakeUser,
    InvalidInvocation,
    SentMessage,
    interaction_payloads,
)

HEAVY_MESSAGES = 60_000
SMALL_LIMIT = 256 * 1024  # forces several parts; Discord's default is 10 MiB


def heavy_content(message_id: int) -> str:
    # Digits of a hash-like number keep gzip from shrinking the export to nothing.
    return f"message {message_id}: {message_id * 2654435761 % 10**12:012d} ünï"


async def seed_messages(world: World, author_id: int) -> None:
    """HEAVY_MESSAGES messages by `author_id`, stored in bulk with the storage API."""
    batch = [
        corpus.IncomingMessage(i, world.channel.id, author_id, heavy_content(i))
        for i in range(1, HEAVY_MESSAGES + 1)
    ]

    def store() -> None:
        with session_scope(world.services.sessions) as session:
            corpus.add_messages(session, world.guild.id, batch)

    await asyncio.to_thread(store)


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the bot's temporary files go, so a test can see that none are left."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


async def export_parts(
    world: World, guild: FakeGuild | None, channel: FakeChannel, user: FakeUser
) -> tuple[SentMessage, list[SentMessage]]:
    """Run /privacy export; the edited response and the followups with the other parts."""
    handle = await world.fake.invoke_slash(guild, channel, user, "privacy", subcommand="export")
    await handle.wait_response(timeout_s=30)
    assert handle.deferred and handle.ephemeral
    edit = await handle.wait_edit(timeout_s=60)
    [first] = edit.files
    count = json.loads(gzip.decompress(first.data))["parts"]
    await world.fake.wait_for(
        lambda: len(handle.followups) >= count - 1, timeout_s=60, what="every part"
    )
    assert len(handle.followups) == count - 1
    return edit, handle.followups


def parse_parts(edit: SentMessage, followups: list[SentMessage]) -> list[dict[str, Any]]:
    files = [edit.files[0]] + [file for followup in followups for file in followup.files]
    return [json.loads(gzip.decompress(file.data)) for file in files]


async def test_export_in_a_dm_returns_everything_across_servers(world: World) -> None:
    await upload_corpus(world)  # the admin's upload in the server
    dm = world.fake.dm_channel(world.admin)
    edit, followups = await export_parts(world, None, dm, world.admin)
    assert edit.content == "Here is everything Parrot stores about you (gzip-compressed JSON)."
    assert followups == []
    [export] = edit.files
    assert export.filename == f"parrot-export-{world.admin.id}.json.gz"
    [data] = parse_parts(edit, followups)
    assert data["user_id"] == world.admin.id
    assert [(d["server_id"], d["filename"]) for d in data["documents"]] == [
        (world.guild.id, "corpus.txt")
    ]


async def test_a_heavy_users_export_comes_complete_in_parts_within_the_upload_limit(
    world: World, temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Discord gives the limit with each interaction; here, a small one.
    monkeypatch.setattr(interaction_payloads, "ATTACHMENT_SIZE_LIMIT", SMALL_LIMIT)
    await seed_messages(world, world.member.id)
    edit, followups = await export_parts(world, world.guild, world.channel, world.member)

    parts = parse_parts(edit, followups)
    count = len(parts)
    assert count > 1
    assert edit.content and f"It is in {count} files" in edit.content
    assert [f.content for f in followups] == [f"Part {i} of {count}." for i in range(2, count + 1)]
    assert all(f.ephemeral for f in followups)
    sizes = [len(file.data) for sent in [edit, *followups] for file in sent.files]
    assert len(sizes) == count and max(sizes) <= SMALL_LIMIT
    assert [(p["part"], p["parts"]) for p in parts] == [(i, count) for i in range(1, count + 1)]
    messages = [m for p in parts for m in p["messages"]]
    assert len(messages) == HEAVY_MESSAGES
    assert [m["id"] for m in messages] == list(range(1, HEAVY_MESSAGES + 1))
    assert all(m["content"] == heavy_content(m["id"]) for m in messages)
    # Sent, then deleted: no copy of the user's data stays on the bot's disk.
    await world.fake.wait_for(
        lambda: not any(temp_dir.iterdir()), timeout_s=30, what="the export's files deleted"
    )


async def test_with_discords_default_limit_a_heavy_users_export_is_one_file(
    world: World, temp_dir: Path
) -> None:
    await seed_messages(world, world.member.id)
    dm = world.fake.dm_channel(world.member)
    edit, followups = await export_parts(world, None, dm, world.member)
    assert followups == []
    [export] = edit.files
    assert len(export.data) <= interaction_payloads.ATTACHMENT_SIZE_LIMIT
    [data] = parse_parts(edit, followups)
    assert len(data["messages"]) == HEAVY_MESSAGES
    assert all(m["content"] == heavy_content(m["id"]) for m in data["messages"])
    await world.fake.wait_for(
        lambda: not any(temp_dir.iterdir()), timeout_s=30, what="the export's files deleted"
    )


async def test_server_only_commands_cannot_be_run_in_a_dm(world: World) -> None:
    dm = world.fake.dm_channel(world.admin)
    with pytest.raises(InvalidInvocation, match="not available in DMs"):
        await world.fake.invoke_slash(None, dm, world.admin, "train", subcommand="start")
