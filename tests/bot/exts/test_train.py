"""/train through the fake Discord: permission inside the command, progress, completion."""

from __future__ import annotations

from datetime import timedelta

from tests.bot.conftest import SMALL_TEXT, World

NO_PINGS = {"parse": []}


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
    model = await world.services.model_info(world.guild.id)
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
