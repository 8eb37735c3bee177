"""Sampling: many prompts advance together, one forward pass per step for all of them.

`BatchSampler` is a dynamic batch. `add()` primes a new prompt on its own (one forward
over the prompt through the full recurrent module) and appends its hidden state and
next-character logits to the batch; `step()` then samples one character for every active
row and runs ONE single-step forward for all of them (`models.charrnn.Stepper`). Rows join
between steps and leave when they finish (max length or a stop string), so different
prompts, prompt lengths and settings share the work.

Reproducibility: each row draws its random numbers from its own `torch.Generator`
(seeded by the request, or by a fresh random seed that `seed_of()` reports), and samples
by inverse CDF with those numbers, so a row's text does not depend on its batch-mates
(up to floating-point differences between batch sizes, which are ~1e-6).

`<unk>` (id 0) is masked out of every distribution, so it is never emitted.
Not thread-safe: one thread owns a sampler (the bot's model worker).

Shapes: B = active rows, V = vocab_size, H = hidden_size.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from models.charrnn import CharRNN, Stepper
from models.checkpoint import Checkpoint
from models.config import Precision
from models.device import resolve_precision
from models.errors import InvalidSettingError
from models.vocab import Vocab

MAX_SAMPLE_CHARS = 100_000
MAX_PROMPT_CHARS = 100_000


@dataclass(frozen=True)
class SampleRequest:
    prompt: str
    max_chars: int = 300  # characters generated after the prompt (the result excludes the prompt)
    temperature: float = 0.8  # 0 means greedy
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1.0: no nucleus cut
    seed: int | None = None  # None: a fresh random seed (see BatchSampler.seed_of)
    stop: tuple[str, ...] = ()  # generation ends before the first occurrence of any of these

    def validate(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidSettingError("the prompt must be text")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise InvalidSettingError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
        if not 1 <= self.max_chars <= MAX_SAMPLE_CHARS:
            raise InvalidSettingError(f"length must be between 1 and {MAX_SAMPLE_CHARS}")
        if not (0.0 <= self.temperature <= 100.0) or math.isnan(self.temperature):
            raise InvalidSettingError("temperature must be between 0 and 100")
        if self.top_k < 0:
            raise InvalidSettingError("top-k must be >= 0 (0 turns it off)")
        if not (0.0 < self.top_p <= 1.0):
            raise InvalidSettingError("top-p must be in (0, 1]")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidSettingError("stop strings must be non-empty text")


@dataclass
class _Row:
    handle: int
    request: SampleRequest
    seed: int
    uniforms: list[float]  # one per character to generate, from the row's own generator
    text: str = ""
    generated: int = 0  # characters sampled (text may be shorter once a stop string is cut)
    emitted: int = 0  # characters of `text` already returned by step()
    done: bool = False
    holdback: int = field(init=False)

    def __post_init__(self) -> None:
        # A stop string may still be forming at the end of the text: keep that part back.
        self.holdback = max((len(s) for s in self.request.stop), default=1) - 1


@dataclass(frozen=True)
class _Settings:
    """The batch's sampling settings as tensors, one row per active row."""

    inv_temperature: Tensor  # [B, 1]
    top_k: Tensor  # [B, 1] int64, V when off
    top_p: Tensor  # [B, 1]
    filtered: bool  # some row uses top-k or top-p (else the sort is skipped)
    rank: Tensor  # [1, V]: 0..V-1, a sorted entry's position

    @classmethod
    def of(cls, reqs: Sequence[SampleRequest], rank: Tensor) -> _Settings:
        vocab_size, device = rank.size(1), rank.device
        # Greedy (temperature 0) is top-k 1 at temperature 1; top_k 0 means "all".
        top_k = [1 if r.temperature == 0 else (r.top_k or vocab_size) for r in reqs]
        return cls(
            inv_temperature=torch.tensor(
                [[1.0 / (r.temperature or 1.0)] for r in reqs], device=device
            ),
            top_k=torch.tensor([[k] for k in top_k], device=device),
            # top_p 1.0 is "off": 2.0 keeps rounding in the cumulative sum from cutting anything.
            top_p=torch.tensor([[r.top_p if r.top_p < 1.0 else 2.0] for r in reqs], device=device),
            filtered=any(k < vocab_size for k in top_k) or any(r.top_p < 1.0 for r in reqs),
            rank=rank,
        )

    def cut(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """probs [B, V] -> sorted descending with cut entries zeroed (not renormalised), and ids."""
        sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly above each entry
        # Keep the top-k, and the smallest prefix whose mass reaches top_p (never less than one).
        rank = self.rank
        cut = (rank >= self.top_k) | ((before >= self.top_p) & (rank > 0))
        return sorted_probs.masked_fill_(cut, 0.0), sorted_ids


class BatchSampler:
    """A dynamic batch of sampling rows over one model (see the module docstring)."""

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocab,
        device: torch.device | str | None = None,
        *,
        precision: Precision = "fp32",
    ) -> None:
        if len(vocab) != model.config.vocab_size:
            raise InvalidSettingError("the vocabulary does not match the model")
        self.model = model.eval()
        self.vocab = vocab
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        if next(model.parameters()).device != self.device:
            self.model = model.to(self.device)
        # The single-step path runs on copies of the weights in the step precision. fp32 by
        # default: on the 2-core EPYC, bf16 costs ~0.001 nats/char but makes a lone row's
        # step slower (oneDNN's bf16 matrix-vector path) without a clear gain at batch 32
        # (benchmarks/bench_sampling.py --precision). Every row, alone or batched, goes
        # through the same path, so batch-mates never change a row's arithmetic.
        self.precision = resolve_precision(precision, self.device)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self._stepper = Stepper(self.model, dtype)
        self._rank = torch.arange(model.config.vocab_size, device=self.device)[None, :]  # [1, V]
        self._rows: list[_Row] = []  # active rows, in batch order
        self._active: dict[int, _Row] = {}  # the same rows by handle
        self._finished: dict[int, _Row] = {}
        self._next_handle = 0
        # Batch state, row i of each tensor belongs to self._rows[i].
        self._h: list[Tensor] = []  # per layer [B, H]
        self._c: list[Tensor] = []  # per layer [B, H] (LSTM only)
        self._logits: Tensor | None = None  # [B, V] float32: next-character logits
        self._settings: _Settings | None = None
        self._chars = vocab.to_list()
        self._start_id = vocab.id_of("\n")  # primes an empty prompt (0 = <unk> when absent)

    # ---- rows joining and leaving -------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self._rows)

    @property
    def handles(self) -> tuple[int, ...]:
        """The active rows' handles, in batch order."""
        return tuple(row.handle for row in self._rows)

    def add(self, request: SampleRequest) -> int:
        """Prime `request.prompt` and add it to the batch; returns the row's handle."""
        request.validate()
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        generator = torch.Generator().manual_seed(seed)
        uniforms = torch.rand(request.max_chars, generator=generator).tolist()
        row = _Row(handle=self._next_handle, request=request, seed=seed, uniforms=uniforms)
        self._next_handle += 1
        h, c, logits = self._stepper.prime(self.vocab.encode(request.prompt) or [self._start_id])
        with torch.inference_mode():
            if self._rows:
                assert self._logits is not None
                self._h = [torch.cat([old, new]) for old, new in zip(self._h, h, strict=True)]
                if c is not None:
                    self._c = [torch.cat([old, new]) for old, new in zip(self._c, c, strict=True)]
                self._logits = torch.cat([self._logits, logits])
            else:
                self._h, self._c, self._logits = h, c or [], logits
        self._rows.append(row)
        self._active[row.handle] = row
        self._settings = None
        return row.handle

    def cancel(self, handle: int) -> str:
        """Stop a row now (its caller went away); returns the text it had so far."""
        for i, row in enumerate(self._rows):
            if row.handle == handle:
                row.done = True
                self._drop([i])
                self._finished[handle] = row
                return row.text
        return self.result(handle)

    def done(self, handle: int) -> bool:
        return handle in self._finished

    def text_of(self, handle: int) -> str:
        """The text a row has sampled so far, finished or not (for an active row, including
        what step() still holds back while a stop string may be forming)."""
        row = self._active.get(handle) or self._finished[handle]
        return row.text

    def result(self, handle: int) -> str:
        """The generated continuation (prompt excluded, stop string cut) of a finished row."""
        try:
            return self._finished[handle].text
        except KeyError:
            raise KeyError(f"row {handle} is not finished (or was released)") from None

    def release(self, handle: int) -> str:
        """Like result(), and forget the row."""
        return self._finished.pop(handle).text

    def seed_of(self, handle: int) -> int:
        row = self._active.get(handle) or self._finished[handle]
        return row.seed

    def _drop(self, positions: Sequence[int]) -> None:
        gone = set(positions)
        for i in gone:
            del self._active[self._rows[i].handle]
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self._rows = [self._rows[i] for i in keep]
        self._settings = None
        if not keep:
            self._h, self._c, self._logits = [], [], None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        assert self._logits is not None
        self._h = [h.index_select(0, index) for h in self._h]
        self._c = [c.index_select(0, index) for c in self._c]
        self._logits = self._logits.index_select(0, index)

    # ---- distributions and steps ------------------------------------------------------------
    def _row_settings(self) -> _Settings:
        if self._settings is None:
            self._settings = _Settings.of([row.request for row in self._rows], self._rank)
        return self._settings

    def next_logits(self) -> dict[int, Tensor]:
        """Raw next-character logits [V] per active row (<unk> at -inf), before any setting."""
        if not self._rows:
            return {}
        logits = self._logits_or_fail()
        return {row.handle: logits[i].clone().cpu() for i, row in enumerate(self._rows)}

    def distributions(self) -> dict[int, Tensor]:
        """Next-character probabilities [V] per active row, after temperature/top-k/top-p."""
        if not self._rows:
            return {}
        with torch.inference_mode():
            settings = self._row_settings()
            probs = torch.softmax(self._logits_or_fail() * settings.inv_temperature, dim=-1)
            if settings.filtered:
                sorted_probs, sorted_ids = settings.cut(probs)
                probs = torch.zeros_like(sorted_probs).scatter_(1, sorted_ids, sorted_probs)
                probs = probs / probs.sum(dim=1, keepdim=True)
            return {row.handle: probs[i].clone().cpu() for i, row in enumerate(self._rows)}

    def _logits_or_fail(self) -> Tensor:
        assert self._logits is not None
        return self._logits

    def step(self, exclude: Mapping[int, Tensor] | None = None) -> dict[int, str]:
        """Sample one character for every active row with ONE forward pass.

        `exclude` maps a row's handle to a bool mask [V] of ids that row may not draw this
        step (the bot's verbatim guard uses it): they get logit -inf before temperature,
        top-k and top-p, so the draw picks the best character left. Leave at least one id
        other than <unk> allowed.

        Returns the new text of each row that was active (possibly "" while a stop string
        may be forming). Rows that finish move to `result()`.
        """
        if not self._rows:
            return {}
        rows = self._rows
        with torch.inference_mode():
            if exclude:
                logits = self._logits_or_fail()
                position = {row.handle: i for i, row in enumerate(rows)}
                for handle, banned in exclude.items():
                    logits[position[handle]].masked_fill_(banned, -math.inf)
            settings = self._row_settings()
            probs = torch.softmax(
                self._logits_or_fail() * settings.inv_temperature, dim=-1
            )  # [B, V]
            # Inverse CDF with the row's own uniform number: independent of batch-mates.
            u = torch.tensor(
                [row.uniforms[row.generated] for row in rows], device=self.device
            )  # [B]
            # Every row samples from its distribution sorted descending (whether or not it
            # cuts anything), so a row's choice for a given uniform never depends on the path
            # its batch-mates need.
            if settings.filtered:
                sorted_probs, sorted_ids = settings.cut(probs)
            else:
                sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
            last_nonzero = (sorted_probs > 0).sum(dim=1, keepdim=True) - 1  # [B, 1]
            cdf = sorted_probs.cumsum_(dim=-1)  # [B, V]
            pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze_(1), right=True)  # [B, 1]
            # Rounding can put u * total at the very end: never step onto a zero-probability id.
            pick = torch.minimum(pick, last_nonzero)
            tokens = sorted_ids.gather(1, pick).squeeze_(1)  # [B]
            self._h, c, self._logits = self._stepper(tokens, self._h, self._c or None)
            self._c = c or []
        out: dict[int, str] = {}
        finished: list[int] = []
        chars = self._chars
        for i, (row, token) in enumerate(zip(rows, tokens.tolist(), strict=True)):
            # Locals, not attributes, in this per-row loop: it is ~10% of a batch-32 step.
            row.generated += 1
            text = row.text + chars[token]  # never <unk>: its probability is 0
            request = row.request
            done = row.generated >= request.max_chars
            for stop in request.stop:
                if text.endswith(stop):
                    text = text[: -len(stop)]
                    done = True
                    break
            emitted = row.emitted
            end = len(text) if done else max(emitted, len(text) - row.holdback)
            row.text = text
            out[row.handle] = text[emitted:end]
            row.emitted = end
            if done:
                row.done = True
                finished.append(i)
                self._finished[row.handle] = row
        if finished:
            self._drop(finished)
        return out


def _model_and_vocab(
    source: CharRNN | Checkpoint, vocab: Vocab | None, device: torch.device | str
) -> tuple[CharRNN, Vocab]:
    if isinstance(source, Checkpoint):
        return source.build_model(device), source.vocab
    if vocab is None:
        raise InvalidSettingError("a vocabulary is needed to sample from a bare model")
    return source.to(device).eval(), vocab


def sample_batch(
    source: CharRNN | Checkpoint,
    requests: Sequence[SampleRequest],
    *,
    vocab: Vocab | None = None,
    device: torch.device | str = "cpu",
    precision: Precision = "fp32",
) -> list[str]:
    """Sample all requests together; returns each continuation, in request order."""
    model, vocab = _model_and_vocab(source, vocab, device)
    sampler = BatchSampler(model, vocab, device, precision=precision)
    handles = [sampler.add(r) for r in requests]
    while sampler.active:
        sampler.step()
    return [sampler.result(h) for h in handles]


def stream(
    source: CharRNN | Checkpoint,
    request: SampleRequest,
    *,
    vocab: Vocab | None = None,
    device: torch.device | str = "cpu",
    precision: Precision = "fp32",
) -> Iterator[str]:
    """Text chunks of one request's continuation, as they are sampled."""
    model, vocab = _model_and_vocab(source, vocab, device)
    sampler = BatchSampler(model, vocab, device, precision=precision)
    handle = sampler.add(request)
    while not sampler.done(handle):
        chunk = sampler.step().get(handle, "")
        if chunk:
            yield chunk
