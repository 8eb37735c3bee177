"""/train through the fake Discord: permission inside the command, progress, completion,
and results of runs no interaction follows (queued before a restart)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.client import ParrotBot
from bot.core.app import build
from bot.core.config import ParrotConfig
from bot.core.services.actor import Actor
from bot.core.storage.db import upgrade_to_head
from tests.bot.conftest import TINY_TRAINING, World, assert_nothing_pings, make_world_entities
from tests.fakediscord import FakeChannel, FakeDiscord, SentMessage, run_bot
from tests.helpers.corpora import SMALL_TEXT

NO_PINGS = {"parse": []}
# Long enough for a second (duplicate) post of the same final event to have arrived.
DUPLICATE_GRACE_SECONDS = 0.5


def channel_results(fake: FakeDiscord, channel: FakeChannel) -> list[SentMessage]:
    """Run results the bot posted as plain channel messages (not interaction edits)."""
    return [
        m
        for m in fake.messages_sent(channel=channel)
        if m.interaction_id is None and (m.content or "").startswith("Training run #")
    ]


async def upload_corpus(world: World) -> None:
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.admin,
        "corpus",
        {"file": ("corpus.txt", (SMALL_TEXT * 3).encode(), "text/plain")},
        subcommand="upload",
    )
    edit = await handle.wait_edit(timeout_s=30)
    assert "Added corpus.txt" in (edit.content or ""), edit.content


async def test_non_admin_train_is_refused_inside_the_command(world: World) -> None:
    await upload_corpus(world)
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "train", {}, subcommand="start"
    )
    await handle.wait_response(timeout_s=30)
    assert handle.ephemeral
    assert "Manage Server" in (handle.response or {})["data"]["content"]
    cancel = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "train", {}, subcommand="cancel"
    )
    await cancel.wait_response(timeout_s=30)
    assert cancel.ephemeral and "Manage Server" in (cancel.response or {})["data"]["content"]


async def test_train_shows_progress_then_the_result(world: World) -> None:
    await upload_corpus(world)
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.admin, "train", {"mode": "scratch"}, subcommand="start"
    )
    await handle.wait_response(timeout_s=30)
    assert handle.deferred
    final = await handle.wait_edit(lambda e: "finished" in (e.content or ""), timeout_s=180)
    assert "bits/char" in (final.content or "")
    assert any("step" in (e.content or "") for e in handle.edits), [e.content for e in handle.edits]
    span = handle.edits[-1].sent_at - handle.dispatched_at
    assert len(handle.edits) <= span + 3  # about one progress edit per second at most
    for sent in handle.sent_messages:
        assert sent.allowed_mentions == NO_PINGS
    await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
    assert channel_results(world.fake, world.channel) == []  # the edit was the one report
    assert sum("finished" in (e.content or "") for e in handle.edits) == 1
    model = await world.services.models.info(world.guild.id)
    assert model.model.arch == "gru"

    # /model shows the new model with its loss curve.
    info = await world.fake.invoke_slash(world.guild, world.channel, world.member, "model")
    edit = await info.wait_edit(timeout_s=30)
    embed = edit.payload["embeds"][0]
    assert {f["name"] for f in embed["fields"]} >= {"Architecture", "Parameters"}
    assert edit.files and edit.files[0].data.startswith(b"\x89PNG")


async def test_a_run_outliving_the_token_posts_in_the_channel(world: World) -> None:
    await upload_corpus(world)
    # load_extension imports the module afresh, so the cog's class is not the one a test
    # could import: set the attribute by name.
    cog = world.bot.get_cog("Train")
    assert cog is not None and hasattr(cog, "token_lifetime")
    cog.token_lifetime = timedelta(seconds=0)  # type: ignore[attr-defined] - as if 15 min passed
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.admin, "train", {"mode": "scratch"}, subcommand="start"
    )
    await world.fake.wait_for(
        lambda: any(
            "finished" in (m.content or "")
            for m in world.fake.messages_sent(channel=world.channel)
            if m.interaction_id is None
        ),
        timeout_s=180,
        what="the result posted in the channel",
    )
    assert not any("finished" in (e.content or "") for e in handle.edits)
    await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
    assert len(channel_results(world.fake, world.channel)) == 1


async def test_cancel_stops_a_run(world: World) -> None:
    await upload_corpus(world)
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.admin, "train", {"mode": "scratch"}, subcommand="start"
    )
    await handle.wait_edit(timeout_s=30)  # the run is queued (or already running)
    cancel = await world.fake.invoke_slash(
        world.guild, world.channel, world.admin, "train", {}, subcommand="cancel"
    )
    await cancel.wait_response(timeout_s=30)
    assert "Cancelling" in (cancel.response or {})["data"]["content"]
    await handle.wait_edit(
        lambda e: "cancelled" in (e.content or "") or "finished" in (e.content or ""),
        timeout_s=180,
    )


async def test_a_run_queued_before_the_bot_started_posts_its_result_once(
    fake_discord: FakeDiscord, parrot_config: ParrotConfig
) -> None:
    guild, channel, admin, _ = make_world_entities(fake_discord)
    services = build(parrot_config, train_overrides=TINY_TRAINING)
    # The previous bot process's work: a corpus and a queued /train run, nobody following.
    await asyncio.to_thread(upgrade_to_head, parrot_config.storage.resolved_database_url)
    admin_actor = Actor(server_id=guild.id, user_id=admin.id, can_manage=True)
    await services.corpus.upload(admin_actor, "corpus.txt", (SMALL_TEXT * 3).encode())
    run_id = await services.trainer.enqueue(
        guild.id, mode="scratch", requested_by=admin.id, notify_channel_id=channel.id
    )
    bot = ParrotBot(parrot_config, services=services)
    async with run_bot(bot, fake_discord):
        await fake_discord.wait_for(
            lambda: bool(channel_results(fake_discord, channel)),
            timeout_s=180,
            what="the queued run's result in its channel",
        )
        await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
        [posted] = channel_results(fake_discord, channel)
        assert posted.content is not None
        assert posted.content.startswith(f"Training run #{run_id} finished: validation ")
        assert "bits/char" in posted.content and "model is active" in posted.content
        assert posted.allowed_mentions == NO_PINGS
    assert_nothing_pings(fake_discord)


async def test_a_scheduled_run_posts_nothing(world: World) -> None:
    await upload_corpus(world)
    run_id = await world.services.trainer.enqueue(world.guild.id, trigger="schedule")
    async for update in world.services.training.watch(run_id):
        if update.final:
            break
    await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
    assert channel_results(world.fake, world.channel) == []
