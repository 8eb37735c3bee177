"""The Sampler end to end: real checkpoints in tmp_path, real torch, real worker threads.

Models are tiny (random weights, or trained for a few seconds for the verbatim guard).
`Directory` is the smallest thing the Sampler accepts as a model source (the registry's
`active_model` + `add_activation_listener`); one test also runs against the real
`ModelRegistry` on a migrated SQLite database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from bot.core.checkpoints.registry import ModelRegistry
from bot.core.errors import GuardMissing, ModelNotReady, ModelUnavailable
from bot.core.generation.sampler import Sampler
from bot.core.generation.verbatim import VerbatimIndex, index_path_for
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from models.charrnn import CharRNN, CharRNNConfig
from models.checkpoint import Checkpoint, TrainingStats, save_checkpoint
from models.config import TrainConfig
from models.sample import SampleRequest
from models.train import train
from models.vocab import Vocab
from tests.helpers.faults import no_file_descriptors_left

TEXT = "the quick brown fox jumps over the lazy dog.\nhello, world! 0123456789\n"


@dataclass(frozen=True)
class Active:
    id: int
    path: Path
    requires_guard: bool = False


class Directory:
    """Which model each server uses, with activation events like the registry's."""

    def __init__(self) -> None:
        self.active: dict[int, Active] = {}
        self.listeners: list[Callable[[int, int], None]] = []
        self.lookups = 0

    def active_model(self, server_id: int) -> Active | None:
        self.lookups += 1
        return self.active.get(server_id)

    def add_activation_listener(self, callback: Callable[[int, int], None]) -> None:
        self.listeners.append(callback)

    def activate(self, server_id: int, model: Active) -> None:
        self.active[server_id] = model
        for callback in self.listeners:
            callback(server_id, model.id)


def write_checkpoint(path: Path, *, seed: int = 0, hidden: int = 32) -> Path:
    torch.manual_seed(seed)
    vocab = Vocab.build(TEXT)
    config = CharRNNConfig(
        vocab_size=len(vocab), embed_dim=8, hidden_size=hidden, num_layers=1, dropout=0.0
    )
    save_checkpoint(Checkpoint.from_model(CharRNN(config), vocab, TrainingStats()), path)
    return path


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Worker threads plus torch's own pool oversubscribe a small shared CPU: keep tests lean."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    directory = Directory()
    for server in (1, 2, 3):
        path = write_checkpoint(tmp_path / f"{server}.ckpt", seed=server)
        directory.active[server] = Active(id=100 + server, path=path)
    return directory


@pytest.fixture
def sampler(directory: Directory) -> Iterator[Sampler]:
    sampler = Sampler(directory, cache_size=8, cache_mb=64)
    yield sampler
    sampler.close()


def request(prompt: str = "the ", chars: int = 50, **settings: object) -> SampleRequest:
    return SampleRequest(prompt, max_chars=chars, **settings)  # type: ignore[arg-type]


async def test_generate_returns_the_continuation_and_the_model_it_came_from(
    sampler: Sampler,
) -> None:
    result = await sampler.generate(1, request(chars=40))
    assert len(result.text) == 40
    assert result.model_id == 101
    assert result.prompt == "the "
    assert result.seed is not None
    assert sampler.loaded_model_ids() == [101]


async def test_a_server_without_a_model_is_not_ready(sampler: Sampler) -> None:
    with pytest.raises(ModelNotReady):
        await sampler.generate(99, request())


async def test_a_corrupt_checkpoint_is_not_ready_and_keeps_serving_others(
    sampler: Sampler, directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    directory.active[2].path.write_bytes(b"garbage")
    with caplog.at_level(logging.ERROR), pytest.raises(ModelNotReady):
        await sampler.generate(2, request())
    assert "cannot load model 102" in caplog.text
    assert len((await sampler.generate(1, request(chars=5))).text) == 5


async def test_same_seed_same_text_through_the_sampler(sampler: Sampler) -> None:
    first = await sampler.generate(1, request(chars=60, seed=42, temperature=1.0))
    # Batch-mates must not change a seeded row's text.
    again, *_ = await asyncio.gather(
        sampler.generate(1, request(chars=60, seed=42, temperature=1.0)),
        *(sampler.generate(1, request(chars=30, temperature=1.0)) for _ in range(5)),
    )
    assert again.text == first.text
    assert again.seed == first.seed == 42
    other = await sampler.generate(1, request(chars=60, seed=43, temperature=1.0))
    assert other.text != first.text


async def test_stream_chunks_join_to_the_final_text(sampler: Sampler) -> None:
    stream = sampler.stream(1, request(chars=300, seed=5))
    chunks = [chunk async for chunk in stream]
    assert stream.result is not None
    assert "".join(chunks) == stream.result.text
    assert len(stream.result.text) == 300
    assert (await sampler.generate(1, request(chars=300, seed=5))).text == stream.result.text


async def test_concurrent_requests_share_forward_steps(sampler: Sampler) -> None:
    lengths = [80, 60, 80, 40, 70, 80, 50, 80, 30, 80, 80, 65, 80, 20, 80, 75]
    results = await asyncio.gather(*(sampler.generate(1, request(chars=n)) for n in lengths))
    assert [len(r.text) for r in results] == lengths
    stats = sampler.stats().models[101]
    assert stats.requests == len(lengths)
    # One step serves every active row: about max(lengths) steps, far from sum(lengths).
    assert stats.steps < 2 * max(lengths) < sum(lengths) // 4
    assert stats.max_batch > 1


async def test_two_servers_run_side_by_side(sampler: Sampler) -> None:
    long_stream = sampler.stream(1, request(chars=20_000))
    chunks = aiter(long_stream)
    await anext(chunks)  # server 1's model is busy sampling
    short = await sampler.generate(2, request(chars=30))
    assert len(short.text) == 30
    assert long_stream.result is None  # server 2 did not wait for server 1's long request
    await long_stream.aclose()


async def test_sampling_runs_off_the_event_loop(sampler: Sampler) -> None:
    ticks = 0
    generation = asyncio.create_task(sampler.generate(1, request(chars=3_000)))
    while not generation.done():
        ticks += 1
        await asyncio.sleep(0.001)
    assert len((await generation).text) == 3_000
    # 3,000 steps take well over 10 ms anywhere; run on the loop, it would not have ticked.
    assert ticks > 10


async def test_a_caller_that_goes_away_frees_its_row(sampler: Sampler) -> None:
    stream = sampler.stream(1, request(chars=50_000))
    await anext(aiter(stream))
    await stream.aclose()
    await sampler.generate(1, request(chars=10))
    assert sampler.stats().models[101].steps < 5_000


async def test_lru_cap_on_count_evicts_the_least_recently_used(directory: Directory) -> None:
    sampler = Sampler(directory, cache_size=2, cache_mb=64)
    try:
        for server in (1, 2, 1, 3):
            await sampler.generate(server, request(chars=5))
        assert sampler.loaded_model_ids() == [101, 103]
    finally:
        sampler.close()


async def test_lru_cap_on_memory_evicts_until_it_fits(directory: Directory) -> None:
    probe = Sampler(directory)
    await probe.generate(1, request(chars=1))
    one_model = probe.stats().cache_bytes
    probe.close()
    sampler = Sampler(directory, cache_size=8, cache_mb=1.5 * one_model / 2**20)
    try:
        for server in (1, 2, 3):
            await sampler.generate(server, request(chars=5))
        assert sampler.loaded_model_ids() == [103]
        assert sampler.stats().cache_bytes == one_model
    finally:
        sampler.close()


async def test_hot_swap_in_flight_request_finishes_on_the_old_model(
    sampler: Sampler, directory: Directory, tmp_path: Path
) -> None:
    stream = sampler.stream(1, request(chars=3_000))
    chunks = aiter(stream)
    await anext(chunks)  # in flight on model 101
    directory.activate(1, Active(id=201, path=write_checkpoint(tmp_path / "new.ckpt", seed=9)))
    fresh = await sampler.generate(1, request(chars=10))
    assert fresh.model_id == 201
    assert set(sampler.loaded_model_ids()) == {101, 201}  # the old one still serves its request
    rest = [chunk async for chunk in chunks]
    assert stream.result is not None
    assert stream.result.model_id == 101
    assert len(stream.result.text) == 3_000 and rest
    assert sampler.loaded_model_ids() == [201]  # released when its last request ended


async def test_hot_swap_without_listeners_checks_on_every_request(
    directory: Directory, tmp_path: Path
) -> None:
    sampler = Sampler(directory.active_model)  # a plain callable: no activation events
    try:
        assert (await sampler.generate(1, request(chars=5))).model_id == 101
        directory.active[1] = Active(id=301, path=write_checkpoint(tmp_path / "b.ckpt", seed=4))
        assert (await sampler.generate(1, request(chars=5))).model_id == 301
        assert sampler.loaded_model_ids() == [301]
    finally:
        sampler.close()


async def test_with_listeners_the_lookup_is_cached_until_an_activation(
    sampler: Sampler, directory: Directory
) -> None:
    for _ in range(3):
        await sampler.generate(1, request(chars=3))
    assert directory.lookups == 1
    directory.activate(1, directory.active[2])
    assert (await sampler.generate(1, request(chars=3))).model_id == 102
    assert directory.lookups == 2


@pytest.fixture
def sessions(sqlite_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def registry(sessions: sessionmaker[Session], tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "checkpoints", sessions)


def add_model(
    registry: ModelRegistry, sessions: sessionmaker[Session], server_id: int, path: Path
) -> int:
    """A finished run's model, activated and announced as the training worker does."""
    with sessions() as session, session.begin():
        corpus.ensure_server(session, server_id)
        model_id = registry.add_model(
            session,
            server_id=server_id,
            run_id=None,
            path=path,
            arch="gru",
            param_count=1,
            chars_trained=1,
            val_loss_nats=1.0,
            activate=True,
        ).id
    registry.notify_activated(server_id, model_id)
    return model_id


async def test_hot_swap_with_the_real_registry(
    registry: ModelRegistry, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    sampler = Sampler(registry)
    try:
        first = await asyncio.to_thread(
            add_model, registry, sessions, 7, write_checkpoint(tmp_path / "a.ckpt", seed=1)
        )
        stream = sampler.stream(7, request(chars=2_000))
        chunks = aiter(stream)
        await anext(chunks)
        second = await asyncio.to_thread(
            add_model, registry, sessions, 7, write_checkpoint(tmp_path / "b.ckpt", seed=2)
        )
        assert (await sampler.generate(7, request(chars=5))).model_id == second
        _ = [chunk async for chunk in chunks]
        assert stream.result is not None and stream.result.model_id == first
        assert sampler.loaded_model_ids() == [second]
    finally:
        sampler.close()


async def test_a_corrupt_active_checkpoint_falls_back_to_the_previous_model(
    registry: ModelRegistry,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sampler = Sampler(registry)
    try:
        good = await asyncio.to_thread(
            add_model, registry, sessions, 8, write_checkpoint(tmp_path / "a.ckpt")
        )
        assert (await sampler.generate(8, request(chars=5))).model_id == good
        broken = tmp_path / "b.ckpt"
        broken.write_bytes(b"half a checkpoint")
        await asyncio.to_thread(add_model, registry, sessions, 8, broken)
        with caplog.at_level(logging.ERROR):
            result = await sampler.generate(8, request(chars=5))
        assert result.model_id == good
        assert "cannot load model" in caplog.text
    finally:
        sampler.close()


# -- the verbatim guard on a model that wants to copy --------------------------------------

SECRET = (
    "My bank PIN is 4471 and the spare house key hides under the third blue flowerpot by the door."
)
PRIME = "My bank PIN"


@pytest.fixture(scope="module")
def parroting_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny model trained for a few seconds on chatter with one private sentence in it."""
    rng = random.Random(0)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "ran",
        "sat",
        "on",
        "mat",
        "big",
        "small",
        "red",
        "green",
        "house",
        "tree",
        "went",
        "home",
        "today",
        "we",
    ]
    lines: list[str] = []
    for i in range(400):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) + ".")
        if i % 8 == 0:
            lines.append(SECRET)
    text = "\n".join(lines)
    config = TrainConfig(
        hidden_size=64,
        embed_dim=16,
        num_layers=1,
        dropout=0.0,
        seq_len=48,
        batch_size=16,
        lr=2e-2,
        warmup_steps=5,
        max_steps=150,
        max_minutes=None,
        eval_interval=150,
        device="cpu",
        precision="fp32",
        num_threads=1,
    )
    path = tmp_path_factory.mktemp("parrot") / "secret.ckpt"
    save_checkpoint(train(text, config).checkpoint, path)
    return path, text


def copies_of_secret(text: str) -> list[str]:
    return [text[i : i + 41] for i in range(len(text) - 40) if text[i : i + 41] in SECRET]


async def test_without_a_guard_the_model_copies_the_secret(
    parroting_checkpoint: tuple[Path, str],
) -> None:
    path, _ = parroting_checkpoint
    sampler = Sampler(lambda server_id: Active(1, path))
    try:
        result = await sampler.generate(1, request(PRIME, chars=150, temperature=0.2, seed=1))
    finally:
        sampler.close()
    assert copies_of_secret(PRIME + result.text)  # the control: the model does want to copy


async def test_the_guard_never_lets_more_than_40_characters_through(
    parroting_checkpoint: tuple[Path, str], tmp_path: Path
) -> None:
    source, text = parroting_checkpoint
    path = tmp_path / "guarded.ckpt"
    path.write_bytes(source.read_bytes())
    VerbatimIndex.build(text, span=40).save(index_path_for(path))
    index = VerbatimIndex.load(index_path_for(path))
    sampler = Sampler(lambda server_id: Active(2, path))
    try:
        results = await asyncio.gather(
            *(
                sampler.generate(1, request(PRIME, chars=150, temperature=t, seed=s))
                for s in range(4)
                for t in (0.0, 0.2, 0.8)
            )
        )
        streamed = sampler.stream(1, request(SECRET[:40], chars=100, temperature=0.0))
        streamed_text = "".join([chunk async for chunk in streamed])
    finally:
        sampler.close()
    for result in results:
        assert len(result.text) == 150
        assert copies_of_secret(PRIME + result.text) == []
        assert index.find_copy(PRIME + result.text, start=len(PRIME)) is None
    assert sum(r.blocked_copies for r in results) > 0
    # A prompt that is itself 40 characters of the secret may not be extended by even one.
    assert copies_of_secret(SECRET[:40] + streamed_text) == []


async def test_a_corrupt_index_disables_the_guard_with_a_warning(
    directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    index_path_for(directory.active[1].path).write_bytes(b"\x93NUMPY broken")
    sampler = Sampler(directory)
    try:
        with caplog.at_level(logging.WARNING):
            result = await sampler.generate(1, request(chars=20))
    finally:
        sampler.close()
    assert len(result.text) == 20
    assert "verbatim guard disabled" in caplog.text


async def test_a_model_trained_here_is_not_served_without_its_index(
    parroting_checkpoint: tuple[Path, str], tmp_path: Path
) -> None:
    """The guard fails closed (issue #12): a missing or unreadable index means the model is
    not served, unless the guard is off (`require_guard=False`: max_verbatim_chars = 0)."""
    source, text = parroting_checkpoint
    path = tmp_path / "trained-here.ckpt"
    path.write_bytes(source.read_bytes())
    guarded = Sampler(lambda server_id: Active(3, path, requires_guard=True), require_guard=True)
    guard_off = Sampler(lambda server_id: Active(3, path, requires_guard=True))
    try:
        with pytest.raises(GuardMissing, match="copy-guard index"):
            await guarded.generate(1, request(PRIME, chars=20))
        index_path_for(path).write_bytes(b"not an index")
        with pytest.raises(GuardMissing):
            await guarded.generate(1, request(PRIME, chars=20))
        assert path.exists()  # the weights are fine: nothing is set aside
        assert len((await guard_off.generate(1, request(PRIME, chars=20))).text) == 20
        VerbatimIndex.build(text, span=40).save(index_path_for(path))
        assert len((await guarded.generate(1, request(PRIME, chars=20))).text) == 20
    finally:
        guarded.close()
        guard_off.close()


async def test_an_unreadable_checkpoint_is_retried_never_set_aside(
    registry: ModelRegistry, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Issue #14: a transient fault (here EMFILE, too many open files) says "temporarily
    unavailable"; once the file reads again the same model answers. Nothing is set aside."""
    sampler = Sampler(registry)
    try:
        path = write_checkpoint(tmp_path / "a.ckpt")
        model_id = await asyncio.to_thread(add_model, registry, sessions, 9, path)
        assert registry.active_model(9) is not None  # warms a pooled database connection
        unavailable = pytest.raises(ModelUnavailable, match="temporarily unavailable")
        with no_file_descriptors_left(), unavailable:
            await sampler.generate(9, request(chars=5))
        if os.geteuid() != 0:  # chmod 000 stops everyone but root
            path.chmod(0)
            try:
                with pytest.raises(ModelUnavailable):
                    await sampler.generate(9, request(chars=5))
            finally:
                path.chmod(0o644)
        assert (await sampler.generate(9, request(chars=5))).model_id == model_id
        assert path.exists() and not path.with_name(path.name + ".corrupt").exists()
        active = registry.active_model(9)
        assert active is not None and active.id == model_id
    finally:
        sampler.close()
