"""ParrotServices without Discord: permissions, collection, privacy, models, generation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core import corpus
from bot.core.config import ModelConfig, ParrotConfig
from bot.core.db import session_scope
from bot.core.errors import InvalidInput, ModelNotReady, NotAllowed, OnCooldown
from bot.core.services import Actor, ParrotServices, TrainingUpdate
from tests.bot.conftest import SMALL_TEXT, TINY_TRAINING

SERVER = 4242
ADMIN = Actor(SERVER, 1, can_manage=True)
MEMBER = Actor(SERVER, 2)


@pytest.fixture
async def services(parrot_config: ParrotConfig) -> AsyncIterator[ParrotServices]:
    services = ParrotServices.from_config(parrot_config, train_overrides=TINY_TRAINING)
    await services.start()
    try:
        yield services
    finally:
        await services.close()


async def final_update(services: ParrotServices, run_id: int) -> TrainingUpdate:
    async with asyncio.timeout(180.0):
        async for update in services.watch_training(run_id):
            if update.final:
                return update
    raise AssertionError(f"run {run_id} ended without a final update")


def set_server_arch(services: ParrotServices, arch: str | None) -> None:
    with session_scope(services.sessions) as session:
        corpus.ensure_server(session, SERVER).arch = arch


def stored_texts(services: ParrotServices) -> list[str]:
    with session_scope(services.sessions) as session:
        return [line for line in corpus.corpus_text(session, SERVER).split("\n") if line]


async def test_admin_only_actions_refuse_members(services: ParrotServices) -> None:
    with pytest.raises(NotAllowed, match="Manage Server"):
        await services.start_training(MEMBER)
    with pytest.raises(NotAllowed):
        await services.cancel_training(MEMBER)
    with pytest.raises(NotAllowed):
        await services.set_channel_collect(MEMBER, 10, True)
    with pytest.raises(NotAllowed):
        await services.upload_document(MEMBER, "a.txt", b"text")
    with pytest.raises(NotAllowed):
        await services.clear_corpus(MEMBER)
    with pytest.raises(InvalidInput, match="no queued or running"):
        await services.cancel_training(ADMIN)


async def test_collection_follows_channel_settings(services: ParrotServices) -> None:
    assert not await services.collect_message(
        SERVER, message_id=1, channel_id=10, author_id=2, content="ignored"
    )
    await services.set_channel_collect(ADMIN, 10, True)
    assert await services.collect_message(
        SERVER, message_id=2, channel_id=10, author_id=2, content="kept"
    )
    await services.edit_message(2, "kept, edited")
    assert stored_texts(services) == ["kept, edited"]
    await services.collect_message(SERVER, message_id=3, channel_id=10, author_id=2, content="gone")
    await services.delete_messages([3])  # deleted while still buffered
    await services.messages.flush()
    assert stored_texts(services) == ["kept, edited"]


async def test_thread_messages_follow_their_parent_channel(services: ParrotServices) -> None:
    await services.set_channel_collect(ADMIN, 10, True)
    assert await services.collect_message(
        SERVER,
        message_id=7,
        channel_id=77,
        author_id=2,
        content="in a thread",
        settings_channel_id=10,
    )
    await services.messages.flush()
    assert stored_texts(services) == ["in a thread"]


async def test_privacy_export_and_forget(services: ParrotServices) -> None:
    await services.set_channel_collect(ADMIN, 10, True)
    await services.collect_message(SERVER, message_id=5, channel_id=10, author_id=2, content="hi")
    exported = json.loads(await services.export_user(2))
    assert [m["content"] for m in exported["messages"]] == ["hi"]
    counts = await services.forget_user(2, SERVER)
    assert counts.messages == 1
    assert stored_texts(services) == []


async def test_clear_corpus_and_remove_server(
    services: ParrotServices, tiny_checkpoint_path: Path
) -> None:
    await services.upload_document(ADMIN, "notes.txt", b"some notes\n")
    model = await services.install_checkpoint(SERVER, tiny_checkpoint_path)
    assert await services.clear_corpus(ADMIN) == corpus.PurgeCounts(messages=0, documents=1)
    assert stored_texts(services) == []
    assert (await services.model_info(SERVER)).model.id == model.id  # models stay
    await services.remove_server(SERVER)
    assert not model.path.exists()
    with pytest.raises(ModelNotReady):
        await services.model_info(SERVER)


async def test_generation_through_the_real_sampler(
    services: ParrotServices, tiny_checkpoint_path: Path
) -> None:
    options = services.generate_options("to be", 30, 0.5, 7)
    with pytest.raises(ModelNotReady):
        await services.generate(SERVER, options)
    await services.install_checkpoint(SERVER, tiny_checkpoint_path)
    first = await services.generate(SERVER, options)
    streamed = "".join([chunk async for chunk in services.stream_generate(SERVER, options)])
    assert len(first) == 30
    assert streamed == first  # same seed, same model, same text
    info = await services.model_info(SERVER)
    assert info.loss_history  # from the checkpoint's own statistics


async def test_an_omitted_arch_uses_the_server_preference_then_the_config_default(
    parrot_config: ParrotConfig,
) -> None:
    # The config default is not the built-in one ("gru"), so the fallback is seen to read it.
    config = dataclasses.replace(parrot_config, model=ModelConfig(arch="rnn"))
    services = ParrotServices.from_config(config, train_overrides=TINY_TRAINING)
    await services.start()
    try:
        await services.upload_document(ADMIN, "corpus.txt", (SMALL_TEXT * 3).encode())
        set_server_arch(services, "lstm")
        preferred = await final_update(
            services, await services.start_training(ADMIN, mode="scratch")
        )
        assert (preferred.status, preferred.arch) == ("succeeded", "lstm"), preferred
        assert (await services.model_info(SERVER)).model.arch == "lstm"

        set_server_arch(services, None)
        default = await final_update(services, await services.start_training(ADMIN, mode="scratch"))
        assert (default.status, default.arch) == ("succeeded", "rnn"), default
        assert {m.arch for m in services.registry.list_models(SERVER)} == {"lstm", "rnn"}
    finally:
        await services.close()


async def test_a_server_generate_cooldown_overrides_the_configs(services: ParrotServices) -> None:
    assert services.config.cooldowns.generate_per_user_seconds == 0  # the tests' config
    await services.take_generate_cooldown(MEMBER)
    await services.take_generate_cooldown(MEMBER)
    with pytest.raises(NotAllowed, match="Manage Server"):
        await services.set_generate_cooldown(MEMBER, 60)
    for bad in (-1, 3601, float("nan")):
        with pytest.raises(InvalidInput, match="between 0 and 3600"):
            await services.set_generate_cooldown(ADMIN, bad)
    assert await services.generate_cooldown_override(SERVER) is None

    await services.set_generate_cooldown(ADMIN, 60)
    assert await services.generate_cooldown_override(SERVER) == 60.0
    with pytest.raises(OnCooldown, match="again in 60s"):
        await services.take_generate_cooldown(MEMBER)  # measured from the last use
    await services.take_generate_cooldown(Actor(SERVER + 1, MEMBER.user_id))  # other servers: no

    await services.set_generate_cooldown(ADMIN, None)
    await services.take_generate_cooldown(MEMBER)
    with session_scope(services.sessions) as session:
        assert corpus.generate_cooldown_override(session, SERVER) is None
