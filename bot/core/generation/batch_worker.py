"""One worker thread per loaded model, running a dynamic batch; the verbatim guard inside it.

`ModelWorker` owns a `GuardedBatchSampler` (models' `BatchSampler` plus the guard) and loops:
take the requests that arrived since the last step, prime them (`add`), drop rows whose
caller went away (`cancel`), run ONE `step()` for every active row, hand each row its new
text, finish rows that are done. So a request that arrives mid-sample joins at the next step
and leaves when it is done, and 32 requests cost about one forward per character instead
of 32. The thread sleeps on a condition when it has no rows (no CPU while idle).

Why a thread per model rather than one round-robin loop over all models: each model's loop
stays a plain blocking loop with no shared scheduler state; torch releases the GIL inside
its kernels, so two servers' models really run side by side, and the OS scheduler time-slices
them fairly (neither can starve the other: each step is short and a thread yields the GIL
at least every switch interval). With few cores, set torch's intra-op threads low (the
Sampler's `torch_threads`), so the workers do not oversubscribe the CPU.

`Job` is the bridge to asyncio: the worker appends text under a lock and wakes the awaiting
coroutine with `call_soon_threadsafe` only when it is actually waiting, so a step costs the
event loop at most one callback per waiting consumer, however many characters were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from torch import Tensor

from bot.core.generation.verbatim import CopyGuard, VerbatimIndex, char_code
from bot.core.logs import get_logger
from models.charrnn import CharRNN
from models.sample import BatchSampler, SampleRequest
from models.vocab import Vocab

log = get_logger(__name__)


class GuardedBatchSampler(BatchSampler):
    """A `BatchSampler` whose rows never complete a (span + 1)-char window of the corpus.

    Before each step, for every row whose last `span` characters could start a copy (one
    bit test per row in the index's prefix filter), every candidate next character is
    tested against the index at once (one vectorised binary search for those rows); the
    candidates that would complete a copied window are excluded from the draw
    (`BatchSampler.step(exclude=...)`: logit -inf), so the draw (temperature, top-k, top-p
    as requested) picks the best character that does not copy: one exact resample, no
    retry loop. A row for which every character would copy (practically impossible) is cut
    where it is. The prompt's own windows never count: only windows ending in a generated
    character are tested. After the step, each row that goes on feeds its new character
    (`text_of(handle)[-1]`) to its `CopyGuard`.
    """

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocab,
        device: torch.device | str | None = None,
        verbatim: VerbatimIndex | None = None,
    ) -> None:
        super().__init__(model, vocab, device)
        self.verbatim = verbatim
        self._guards: dict[int, CopyGuard] = {}
        self.blocked: dict[int, int] = {}  # handle -> characters the guard resampled
        self.guard_seconds = 0.0  # time spent in the guard, to measure what it adds to a step
        self._risky: set[int] = set()  # handles whose next character might complete a copy
        # Every id's hash code, [1, V]; <unk> (id 0) is never sampled and its 0 matches nothing.
        codes = [0, *(char_code(c) for c in vocab.to_list()[1:])]
        self._candidate_codes = np.array([codes], dtype=np.uint64)

    def add(self, request: SampleRequest) -> int:
        handle = super().add(request)
        self.blocked[handle] = 0
        if self.verbatim is not None:
            guard = self._guards[handle] = CopyGuard(self.verbatim, request.prompt)
            if guard.risky:
                self._risky.add(handle)
        return handle

    def release(self, handle: int) -> str:
        self._guards.pop(handle, None)
        self._risky.discard(handle)
        self.blocked.pop(handle, None)
        return super().release(handle)

    def step(self, exclude: Mapping[int, Tensor] | None = None) -> dict[int, str]:
        if not self._guards:
            return super().step(exclude)
        started = time.perf_counter()
        banned = self._copying_chars()
        for handle, mask in (exclude or {}).items():  # the caller's exclusions, if any
            if not self.done(handle):
                banned[handle] = banned[handle] | mask if handle in banned else mask
        handles = self.handles
        self.guard_seconds += time.perf_counter() - started
        new_text = super().step(banned)
        started = time.perf_counter()
        guards, risky = self._guards, self._risky
        risky.clear()
        for handle in handles:
            if not self.done(handle):  # a row that goes on ends with its new character
                guard = guards[handle]
                guard.push(self.text_of(handle)[-1])
                if guard.risky:
                    risky.add(handle)
        self.guard_seconds += time.perf_counter() - started
        return new_text

    def _copying_chars(self) -> dict[int, Tensor]:
        """handle -> bool [V] of the characters that would complete a copy, for the rows that
        have some; a row that could only copy is cancelled here (its text ends where it is)."""
        assert self.verbatim is not None
        if not self._risky:  # most steps: no row can be copying (see CopyGuard.risky)
            return {}
        # The binary searches only for the rows that may be copying.
        handles = [handle for handle in self.handles if handle in self._risky]
        if not handles:
            return {}
        bases = [self._guards[handle].candidate_base for handle in handles]
        candidates = np.array(bases, dtype=np.uint64)[:, None] + self._candidate_codes  # [R, V]
        copying = self.verbatim.contains(candidates)  # [R, V] bool
        copying[:, 0] = False
        banned: dict[int, Tensor] = {}
        for r in np.flatnonzero(copying.any(axis=1)).tolist():
            handle = handles[r]
            mask = torch.from_numpy(copying[r]).to(self.device)  # [V]
            if bool(mask[1:].all()):
                self.cancel(handle)
                continue
            banned[handle] = mask
            self.blocked[handle] += 1
        return banned


class Job:
    """One request's text, filled by a worker thread and read by a coroutine on `loop`."""

    def __init__(
        self, request: SampleRequest, loop: asyncio.AbstractEventLoop, *, streaming: bool
    ) -> None:
        self.request = request
        self.loop = loop
        self.streaming = streaming
        self.seed: int | None = None
        self.blocked = 0  # characters the verbatim guard resampled
        self.cancelled = False
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._text: str | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- worker side ---------------------------------------------------------------------

    def push(self, text: str) -> None:
        if not self.streaming or not text:
            return
        with self._lock:
            self._parts.append(text)
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)

    def finish(self, text: str) -> None:
        with self._lock:
            self._text = text
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self._error = error
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(_resolve, waiter)

    # -- event-loop side -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._text is not None or self._error is not None

    async def next_chunk(self) -> str | None:
        """New text since the last call (waits for some), or None once the job is over."""
        while True:
            with self._lock:
                if self._parts:
                    chunk = "".join(self._parts)
                    self._parts.clear()
                    return chunk
                if self._error is not None:
                    raise self._error
                if self._text is not None:
                    return None
                waiter = self._waiter = self.loop.create_future()
            await waiter

    async def result(self) -> str:
        """The whole generated text, once the worker has finished it."""
        while True:
            with self._lock:
                if self._error is not None:
                    raise self._error
                if self._text is not None:
                    return self._text
                waiter = self._waiter = self.loop.create_future()
            await waiter


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ModelWorker:
    """The thread that samples every request for one loaded model (see the module docstring)."""

    def __init__(
        self,
        model_id: Hashable,
        model: CharRNN,
        vocab: Vocab,
        device: torch.device,
        verbatim: VerbatimIndex | None,
    ) -> None:
        self.model_id = model_id
        self.model = model
        self.vocab = vocab
        self.device = device
        self.verbatim = verbatim
        self.steps = 0  # forward steps run (one per character for the whole batch)
        self.step_seconds = 0.0  # wall time inside step(), guard included
        self.guard_seconds = 0.0  # the verbatim guard's part of step_seconds
        self.requests = 0
        self.max_batch = 0  # the largest number of rows one step carried
        self._cond = threading.Condition()
        self._pending: list[Job] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("this model was unloaded")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"parrot-sampler-{self.model_id}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def wake(self) -> None:
        """Make the loop look at its jobs now (a caller cancelled one)."""
        with self._cond:
            self._cond.notify()

    def stop(self, *, wait: bool = False, timeout: float = 10.0) -> None:
        """End the loop (jobs still pending or in flight fail: call it when nothing uses it).

        Does not block by default, because eviction happens on the event loop when a request
        ends; the thread drops its model reference as it exits. `wait` joins it (shutdown)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        batch = GuardedBatchSampler(self.model, self.vocab, self.device, self.verbatim)
        jobs: dict[int, Job] = {}
        while True:
            with self._cond:
                while not self._pending and not jobs and not self._stopping:
                    self._cond.wait()
                arrived, self._pending = self._pending, []
                stopping = self._stopping
            if stopping:
                for job in [*arrived, *jobs.values()]:
                    job.fail(RuntimeError("the model was unloaded before the text was finished"))
                return
            for job in arrived:
                self._join(batch, jobs, job)
            for handle, job in list(jobs.items()):
                if job.cancelled:
                    batch.cancel(handle)
                    batch.release(handle)
                    del jobs[handle]
            if not batch.active:
                continue
            try:
                self.max_batch = max(self.max_batch, batch.active)
                started, guard_before = time.perf_counter(), batch.guard_seconds
                new_text = batch.step()
                self.step_seconds += time.perf_counter() - started
                self.guard_seconds += batch.guard_seconds - guard_before
            except Exception as error:  # a bug or a device error: fail these rows, keep serving
                log.exception("sampling step failed for model %s", self.model_id)
                for job in jobs.values():
                    job.fail(error)
                jobs.clear()
                batch = GuardedBatchSampler(self.model, self.vocab, self.device, self.verbatim)
                continue
            self.steps += 1
            for handle, text in new_text.items():
                jobs[handle].push(text)
            for handle in [h for h in jobs if batch.done(h)]:
                job = jobs.pop(handle)
                job.blocked = batch.blocked.get(handle, 0)
                job.finish(batch.release(handle))

    def _join(self, batch: GuardedBatchSampler, jobs: dict[int, Job], job: Job) -> None:
        if job.cancelled:
            return
        try:
            handle = batch.add(job.request)  # primes the prompt: one forward over it
        except Exception as error:  # e.g. an invalid setting: that request fails, not the batch
            job.fail(error)
            return
        self.requests += 1
        job.seed = batch.seed_of(handle)
        jobs[handle] = job
