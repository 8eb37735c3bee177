"""ParrotServices without Discord: permissions, collection, privacy, models, generation."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.app import build
from bot.core.config import ModelConfig, ParrotConfig
from bot.core.errors import InvalidInput, ModelNotReady, NotAllowed, OnCooldown
from bot.core.services import ParrotServices
from bot.core.services.actor import Actor
from bot.core.storage import corpus, corpus_text, privacy
from bot.core.storage.db import session_scope
from bot.core.training.queue import RunEvent
from tests.bot.conftest import TINY_TRAINING
from tests.helpers.corpora import SMALL_TEXT

SERVER = 4242
ADMIN = Actor(SERVER, 1, can_manage=True)
MEMBER = Actor(SERVER, 2)


@pytest.fixture
async def services(parrot_config: ParrotConfig) -> AsyncIterator[ParrotServices]:
    services = build(parrot_config, train_overrides=TINY_TRAINING)
    await services.start()
    try:
        yield services
    finally:
        await services.close()


async def final_update(services: ParrotServices, run_id: int) -> RunEvent:
    async with asyncio.timeout(180.0):
        async for update in services.training.watch(run_id):
            if update.final:
                return update
    raise AssertionError(f"run {run_id} ended without a final update")


def set_server_arch(services: ParrotServices, arch: str | None) -> None:
    with session_scope(services.sessions) as session:
        corpus.ensure_server(session, SERVER).arch = arch


def stored_texts(services: ParrotServices) -> list[str]:
    with session_scope(services.sessions) as session:
        return [line for line in corpus_text.corpus_text(session, SERVER).split("\n") if line]


async def test_admin_only_actions_refuse_members(services: ParrotServices) -> None:
    with pytest.raises(NotAllowed, match="Manage Server"):
        await services.training.start(MEMBER)
    with pytest.raises(NotAllowed):
        await services.training.cancel(MEMBER)
    with pytest.raises(NotAllowed):
        await services.settings.set_channel_collect(MEMBER, 10, True)
    with pytest.raises(NotAllowed):
        await services.corpus.upload(MEMBER, "a.txt", b"text")
    with pytest.raises(NotAllowed):
        await services.corpus.clear(MEMBER)
    with pytest.raises(InvalidInput, match="no queued or running"):
        await services.training.cancel(ADMIN)


async def test_collection_follows_channel_settings(services: ParrotServices) -> None:
    assert not await services.collection.collect_message(
        SERVER, message_id=1, channel_id=10, author_id=2, content="ignored"
    )
    await services.settings.set_channel_collect(ADMIN, 10, True)
    assert await services.collection.collect_message(
        SERVER, message_id=2, channel_id=10, author_id=2, content="kept"
    )
    await services.collection.edit_message(2, "kept, edited")
    assert stored_texts(services) == ["kept, edited"]
    await services.collection.collect_message(
        SERVER, message_id=3, channel_id=10, author_id=2, content="gone"
    )
    await services.collection.delete_messages([3])  # deleted while still buffered
    await services.collection.buffer.flush()
    assert stored_texts(services) == ["kept, edited"]


async def test_thread_messages_follow_their_parent_channel(services: ParrotServices) -> None:
    await services.settings.set_channel_collect(ADMIN, 10, True)
    assert await services.collection.collect_message(
        SERVER,
        message_id=7,
        channel_id=77,
        author_id=2,
        content="in a thread",
        settings_channel_id=10,
    )
    await services.collection.buffer.flush()
    assert stored_texts(services) == ["in a thread"]


async def test_privacy_export_and_forget(services: ParrotServices) -> None:
    await services.settings.set_channel_collect(ADMIN, 10, True)
    await services.collection.collect_message(
        SERVER, message_id=5, channel_id=10, author_id=2, content="hi"
    )
    files = await services.privacy.export_user(2)
    try:
        [part] = files.paths
        exported = json.loads(gzip.decompress(part.read_bytes()))
    finally:
        files.delete()
    assert [m["content"] for m in exported["messages"]] == ["hi"]
    assert not files.directory.exists()
    counts = await services.privacy.forget_user(2, SERVER)
    assert counts.messages == 1
    assert stored_texts(services) == []


async def test_clear_corpus_and_remove_server(
    services: ParrotServices, tiny_checkpoint_path: Path
) -> None:
    await services.corpus.upload(ADMIN, "notes.txt", b"some notes\n")
    model = await services.models.install(SERVER, tiny_checkpoint_path)
    cleared = await services.corpus.clear(ADMIN)
    assert cleared == privacy.PurgeCounts(messages=0, documents=1, models=1)
    assert stored_texts(services) == []
    # The models learned from what is gone, so they go at once (issue #12).
    assert not model.path.exists()
    with pytest.raises(ModelNotReady):
        await services.models.info(SERVER)
    second = await services.models.install(SERVER, tiny_checkpoint_path)
    await services.privacy.remove_server(SERVER)
    assert not second.path.exists()
    with pytest.raises(ModelNotReady):
        await services.models.info(SERVER)


async def test_generation_through_the_real_sampler(
    services: ParrotServices, tiny_checkpoint_path: Path
) -> None:
    options = services.generation.options("to be", 30, 0.5, 7)
    with pytest.raises(ModelNotReady):
        await services.generation.generate(SERVER, options)
    await services.models.install(SERVER, tiny_checkpoint_path)
    first = await services.generation.generate(SERVER, options)
    streamed = "".join([chunk async for chunk in services.generation.stream(SERVER, options)])
    assert len(first) == 30
    assert streamed == first  # same seed, same model, same text
    info = await services.models.info(SERVER)
    assert info.loss_history  # from the checkpoint's own statistics


async def test_an_omitted_arch_uses_the_server_preference_then_the_config_default(
    parrot_config: ParrotConfig,
) -> None:
    # The config default is not the built-in one ("gru"), so the fallback is seen to read it.
    config = dataclasses.replace(parrot_config, model=ModelConfig(arch="rnn", base=""))
    services = build(config, train_overrides=TINY_TRAINING)
    await services.start()
    try:
        await services.corpus.upload(ADMIN, "corpus.txt", (SMALL_TEXT * 3).encode())
        set_server_arch(services, "lstm")
        preferred = await final_update(
            services, await services.training.start(ADMIN, mode="scratch")
        )
        assert (preferred.status, preferred.arch) == ("succeeded", "lstm"), preferred
        assert (await services.models.info(SERVER)).model.arch == "lstm"

        set_server_arch(services, None)
        default = await final_update(services, await services.training.start(ADMIN, mode="scratch"))
        assert (default.status, default.arch) == ("succeeded", "rnn"), default
        assert {m.arch for m in services.registry.list_models(SERVER)} == {"lstm", "rnn"}
    finally:
        await services.close()


async def test_a_server_generate_cooldown_overrides_the_configs(services: ParrotServices) -> None:
    assert services.config.cooldowns.generate_per_user_seconds == 0  # the tests' config
    await services.generation.take_cooldown(MEMBER)
    await services.generation.take_cooldown(MEMBER)
    with pytest.raises(NotAllowed, match="Manage Server"):
        await services.settings.set_generate_cooldown(MEMBER, 60)
    for bad in (-1, 3601, float("nan")):
        with pytest.raises(InvalidInput, match="between 0 and 3600"):
            await services.settings.set_generate_cooldown(ADMIN, bad)
    assert await services.generation.cooldown_override(SERVER) is None

    await services.settings.set_generate_cooldown(ADMIN, 60)
    assert await services.generation.cooldown_override(SERVER) == 60.0
    with pytest.raises(OnCooldown, match="again in 60s"):
        await services.generation.take_cooldown(MEMBER)  # measured from the last use
    await services.generation.take_cooldown(Actor(SERVER + 1, MEMBER.user_id))  # other servers: no

    await services.settings.set_generate_cooldown(ADMIN, None)
    await services.generation.take_cooldown(MEMBER)
    with session_scope(services.sessions) as session:
        assert corpus.generate_cooldown_override(session, SERVER) is None
