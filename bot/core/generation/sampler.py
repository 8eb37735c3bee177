"""`Sampler`: the bot's text generation service (asyncio-facing; the torch work runs in threads).

- Which model: `models` is the registry (anything with `active_model(server_id)`) or a plain
  callable `server_id -> ModelRecord | None`; it is called in a thread for every request
  unless it also offers `add_activation_listener`, in which case the answer is cached per
  server until the registry announces a new model. No model: `ModelNotReady`. A checkpoint
  that fails to load goes to the registry's `discard_unloadable` (when it has one), which
  sets it aside and activates the previous model, and the request retries on that one.
- Loaded models live in a `ModelCache` (LRU, capped by count and by estimated bytes:
  parameters x element size + the verbatim index), so a bot in many servers does not hold
  every model at once.
- Hot swap: a request pins the model it resolved at its start and finishes on it; the next
  request resolves the new one; the superseded model is retired, i.e. dropped as soon as
  its last request ends.
- Dynamic batching and the verbatim guard: one `ModelWorker` thread per loaded model (see
  `bot.core.generation.batch_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch

from bot.core.config import GenerationConfig
from bot.core.errors import GuardMissing, ModelNotReady, ModelUnavailable
from bot.core.generation.batch_worker import Job, ModelWorker
from bot.core.generation.model_cache import ModelCache
from bot.core.generation.results import (
    GenerationResult,
    GenerationStream,
    ModelId,
    generation_result,
)
from bot.core.generation.verbatim import index_path_for, load_index_or_none
from bot.core.logs import get_logger
from models.checkpoint import load_checkpoint
from models.errors import CheckpointError, CheckpointUnavailable
from models.sample import SampleRequest

log = get_logger(__name__)

MAX_FALLBACKS = 3  # corrupt checkpoints skipped in a row before giving up on a request
UNAVAILABLE_RETRY_SECONDS = (0.2, 1.0)  # then the request fails; the next one tries again
_MB = 1024 * 1024


class ActiveModelLike(Protocol):
    """What the sampler needs to know of a server's active model (the registry's ModelRecord)."""

    @property
    def id(self) -> ModelId: ...

    @property
    def path(self) -> Path | str: ...

    # Optional (read with getattr, default False): the model read the server's corpus, so it
    # is served only with its verbatim index (`Sampler(require_guard=True)`).
    # requires_guard: bool


@runtime_checkable
class ModelDirectory(Protocol):
    def active_model(self, server_id: int) -> ActiveModelLike | None: ...


ModelSource = ModelDirectory | Callable[[int], ActiveModelLike | None]


@dataclass(frozen=True)
class ModelStats:
    steps: int  # forward steps, each one character for every active row
    requests: int
    max_batch: int
    nbytes: int
    step_seconds: float  # time in forward steps, verbatim guard included
    guard_seconds: float  # the guard's part of it


@dataclass(frozen=True)
class SamplerStats:
    models: dict[ModelId, ModelStats] = field(default_factory=dict)  # loaded, LRU order
    cache_bytes: int = 0


_Key = tuple[ModelId, Path]


@dataclass
class _Served:
    key: _Key
    worker: ModelWorker
    nbytes: int

    @property
    def model_id(self) -> ModelId:
        return self.key[0]


class Sampler:
    def __init__(
        self,
        models: ModelSource,
        *,
        cache_size: int = 8,
        cache_mb: float = 1024,
        device: torch.device | str = "cpu",
        torch_threads: int | None = None,
        require_guard: bool = False,
        fallback: ActiveModelLike | None = None,
    ) -> None:
        """`torch_threads` (process-wide, so only set it where the bot owns the process)
        caps torch's intra-op threads: on a small CPU, 1 keeps the workers from fighting.
        `require_guard`: a model whose verbatim index is missing or unreadable is not served
        (`from_config` sets it unless `generation.max_verbatim_chars = 0`): the guard fails
        closed. `fallback`: the model a server without one of its own is answered from (the
        base model); `serves_fallback` tells the front end to say so."""
        self._require_guard = require_guard
        self._fallback = fallback
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self._device = torch.device(device)
        self._lookup: Callable[[int], ActiveModelLike | None] = (
            models.active_model if isinstance(models, ModelDirectory) else models
        )
        self._loads = ThreadPoolExecutor(cache_size + 2, thread_name_prefix="parrot-model-load")
        # Keyed by (model id, checkpoint path): the key says what to load.
        self._cache: ModelCache[_Key, _Served] = ModelCache(
            self._load,
            size_of=lambda served: served.nbytes,
            close=self._unload,
            max_entries=cache_size,
            max_bytes=int(cache_mb * _MB),
        )
        # Server bookkeeping, touched by requests and by registry listeners (any thread).
        self._lock = threading.Lock()
        self._server_model: dict[int, _Key] = {}  # the model each server last used
        self._known_active: dict[int, ActiveModelLike] = {}  # only with activation events
        self._activations: dict[int, int] = {}  # server -> activations seen (stale-answer check)
        self._guarded: set[ModelId] = set()  # models that must be served with their index
        self._listens = False
        # The registry's "this file is corrupt: set it aside, activate the previous model".
        self._discard: Callable[[ModelId], object] | None = getattr(
            models, "discard_unloadable", None
        )
        subscribe = getattr(models, "add_activation_listener", None)
        if callable(subscribe):
            subscribe(self.on_model_activated)
            self._listens = True

    @classmethod
    def from_config(
        cls,
        models: ModelSource,
        config: GenerationConfig,
        *,
        device: torch.device | str = "cpu",
        torch_threads: int | Literal["auto"] | None = "auto",
        fallback: ActiveModelLike | None = None,
    ) -> Sampler:
        """`torch_threads="auto"`: on a CPU, half the cores (1 on a 2-core machine, at most 4).

        Measured on 2 shared cores: 16 concurrent 80-char requests (tiny model) took 13x
        longer with torch's default of 2 threads than with 1, because the thread pools spin
        against each other and the other processes; the batch is the parallelism."""
        if torch_threads == "auto":
            cpu = torch.device(device).type == "cpu"
            torch_threads = min(4, max(1, (os.cpu_count() or 2) // 2)) if cpu else None
        return cls(
            models,
            cache_size=config.model_cache_size,
            cache_mb=config.model_cache_mb,
            device=device,
            torch_threads=torch_threads,
            require_guard=config.max_verbatim_chars > 0,
            fallback=fallback,
        )

    # -- public API ----------------------------------------------------------------------

    async def generate(self, server_id: int, request: SampleRequest) -> GenerationResult:
        """Sample `request` on the server's active model; raises ModelNotReady without one."""
        started = time.perf_counter()
        async with self._job(server_id, request, streaming=False) as (model_id, job):
            text = await job.result()
        return generation_result(server_id, model_id, job, text, started)

    def stream(self, server_id: int, request: SampleRequest) -> GenerationStream:
        """An async iterator of text chunks as they are sampled; `.result` once exhausted."""
        return GenerationStream(self._job(server_id, request, streaming=True), server_id)

    def on_model_activated(self, server_id: int, model_id: ModelId) -> None:
        """Registry listener (any thread): the next request of `server_id` uses the new model;
        the old one is dropped once its last request ends."""
        self._drop_server(server_id, keep=model_id)

    def serves_fallback(self, server_id: int) -> bool:
        """Whether the server's last request was answered by the fallback (base) model."""
        with self._lock:
            key = self._server_model.get(server_id)
        return self._fallback is not None and key is not None and key[0] == self._fallback.id

    def forget_server(self, server_id: int) -> None:
        """The server's models were retired or purged (any thread): nothing cached for it is
        served again; the next request asks the registry afresh."""
        self._drop_server(server_id, keep=None)

    def _drop_server(self, server_id: int, *, keep: ModelId | None) -> None:
        with self._lock:
            self._known_active.pop(server_id, None)
            self._activations[server_id] = self._activations.get(server_id, 0) + 1
            previous = self._server_model.get(server_id)
            retire = previous is not None and previous[0] != keep
            stale = self._unmap_server(server_id) if retire else None
        if stale is not None:
            self._cache.retire(stale)

    def stats(self) -> SamplerStats:
        models: dict[ModelId, ModelStats] = {}
        for key in self._cache.loaded():
            served = self._cache.peek(key)
            if served is not None:
                worker = served.worker
                models[served.model_id] = ModelStats(
                    steps=worker.steps,
                    requests=worker.requests,
                    max_batch=worker.max_batch,
                    nbytes=served.nbytes,
                    step_seconds=worker.step_seconds,
                    guard_seconds=worker.guard_seconds,
                )
        return SamplerStats(models=models, cache_bytes=self._cache.total_bytes)

    def loaded_model_ids(self) -> list[ModelId]:
        """Loaded models, least recently used first."""
        return [model_id for model_id, _ in self._cache.loaded()]

    def close(self) -> None:
        """Stop every worker and wait for the threads (requests still running fail)."""
        workers = [
            served.worker for key in self._cache.loaded() if (served := self._cache.peek(key))
        ]
        self._cache.clear()
        for worker in workers:
            worker.stop(wait=True)
        self._loads.shutdown(wait=False, cancel_futures=True)

    # -- internals -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _job(
        self, server_id: int, request: SampleRequest, *, streaming: bool
    ) -> AsyncIterator[tuple[ModelId, Job]]:
        served = await self._open(server_id)
        try:
            job = Job(request, asyncio.get_running_loop(), streaming=streaming)
            served.worker.submit(job)
            try:
                yield served.model_id, job
            finally:
                if not job.finished:  # the caller went away: free the row at the next step
                    job.cancelled = True
                    served.worker.wake()
        finally:
            self._cache.release(served.key)

    async def _open(self, server_id: int) -> _Served:
        """The server's active model, loaded and pinned; a checkpoint that will not load is
        reported to the registry (`discard_unloadable`), which falls back to the previous one."""
        for _ in range(MAX_FALLBACKS):
            active = await self._active(server_id)
            try:
                return await _retrying_unavailable(
                    functools.partial(self._acquire, server_id, active), server_id, active.id
                )
            except CheckpointError as error:
                log.error("server %s: cannot load model %s: %s", server_id, active.id, error)
                with self._lock:
                    self._known_active.pop(server_id, None)
                if self._discard is None:
                    break
                await asyncio.to_thread(self._discard, active.id)
        raise ModelNotReady(
            "This server's model could not be loaded. An admin can train a new one with /train."
        )

    async def _active(self, server_id: int) -> ActiveModelLike:
        with self._lock:
            active = self._known_active.get(server_id)
            seen = self._activations.get(server_id, 0)
        if active is not None:
            return active
        active = await asyncio.to_thread(self._lookup, server_id)
        if active is None and self._fallback is not None:
            return self._fallback  # not cached: the server's own model is looked up each time
        if active is None:
            raise ModelNotReady()
        with self._lock:
            # Cache the answer only if no activation arrived while we asked (it may be stale).
            if self._listens and self._activations.get(server_id, 0) == seen:
                self._known_active[server_id] = active
        return active

    async def _acquire(self, server_id: int, active: ActiveModelLike) -> _Served:
        key = (active.id, Path(active.path))
        with self._lock:
            if self._require_guard and getattr(active, "requires_guard", False):
                self._guarded.add(active.id)
            stale = None
            if self._server_model.get(server_id, key) != key:
                stale = self._unmap_server(server_id)
            self._server_model[server_id] = key
        if stale is not None:
            self._cache.retire(stale)
        served = self._cache.acquire_if_loaded(key)  # the usual case: no thread hop
        if served is not None:
            return served
        # Its own threads: a request waiting for a cache slot must not hold one of the
        # default executor's threads, which the database work needs (issue #14).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._loads, self._cache.acquire, key)

    def _unmap_server(self, server_id: int) -> _Key | None:
        """(Under the lock.) Forget the server's old model; return it if no server uses it now."""
        old = self._server_model.pop(server_id, None)
        return old if old is not None and old not in self._server_model.values() else None

    def _load(self, key: _Key) -> _Served:
        """Runs in a thread: checkpoint -> model on the device, plus its verbatim index."""
        model_id, path = key
        checkpoint = load_checkpoint(path)
        model = checkpoint.build_model(self._device)
        verbatim = load_index_or_none(index_path_for(path))
        with self._lock:
            guarded = model_id in self._guarded
        if verbatim is None and guarded:
            # Not a bad checkpoint (nothing is set aside): the weights are fine, but without
            # the index nothing stops them from reciting the corpus.
            raise GuardMissing()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        nbytes = weights + (verbatim.nbytes if verbatim is not None else 0)
        worker = ModelWorker(model_id, model, checkpoint.vocab, self._device, verbatim)
        log.info("loaded model %s (%.1f MB) from %s", model_id, nbytes / _MB, path)
        return _Served(key, worker, nbytes)

    def _unload(self, served: _Served) -> None:
        """The cache dropped a model: end its thread (without waiting: this may run on the loop)."""
        served.worker.stop()


async def _retrying_unavailable(
    acquire: Callable[[], Awaitable[_Served]], server_id: int, model_id: ModelId
) -> _Served:
    """`acquire`, retried with backoff while the file cannot be read (I/O, permissions,
    memory): such a model is fine and is never set aside; the request then fails with
    `ModelUnavailable` and the next one tries again."""
    for delay in (*UNAVAILABLE_RETRY_SECONDS, None):
        try:
            return await acquire()
        except CheckpointUnavailable as error:
            log.warning("server %s: model %s unreadable for now: %s", server_id, model_id, error)
            if delay is None:
                raise ModelUnavailable() from None
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
