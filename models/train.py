"""Training and evaluation: truncated backpropagation through time over the whole corpus.

The training text is cut into `batch_size` contiguous streams, laid side by side as a
[B, N] grid, and walked left to right in `seq_len` chunks. The hidden state of each
stream is carried (detached) from one chunk to the next, so the model sees context longer
than a chunk and every character is a target exactly once per epoch (unlike overlapping
fixed windows, which waste most of the compute). AdamW, gradient clipping, a linear warmup
then cosine decay to the step/time budget, periodic validation on the last
`val_fraction` of the text, best-checkpoint keeping and early stopping.

Validation and `evaluate` read a text the same way, as streams with the hidden state
carried from chunk to chunk (`_mean_loss`), so their losses are comparable.

Precision: bf16 autocast where `models.device` finds native support; master weights and
the loss stay float32.

Shapes: B = streams (batch), N = characters per stream, T = seq_len, V = vocab_size.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import torch
from torch import Tensor

from models.charrnn import CharRNN, CharRNNConfig, Hidden
from models.checkpoint import Checkpoint, TrainingStats
from models.config import Precision, TrainConfig, minimum_corpus_chars, validation_chars
from models.device import autocast, resolve_device, resolve_precision
from models.errors import CorpusTooSmallError, TrainingCancelled
from models.units import nats_to_bits
from models.vocab import Vocab


@dataclass(frozen=True)
class Progress:
    step: int  # optimizer steps done in this run
    total_steps: int  # the step budget, or an estimate from the time budget and current speed
    train_loss: float  # nats/char, moving average of recent steps
    val_loss: float | None  # nats/char at the latest validation (None before the first)
    chars_per_sec: float  # training targets per second
    eta_seconds: float
    elapsed_seconds: float
    best_val_loss: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    best_val_loss: float  # nats/char
    cancelled: bool = False
    stopped_early: bool = False
    steps: int = 0

    @property
    def best_val_bits(self) -> float:
        return nats_to_bits(self.best_val_loss)


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    bits_per_char: float
    chars: int  # characters predicted (the first one of the text is only context)


def _split(text: str, config: TrainConfig) -> tuple[str, str]:
    """(train, validation): the validation split is the end of the text, the newest part."""
    needed = minimum_corpus_chars(config)
    if len(text) < needed:
        raise CorpusTooSmallError(
            f"the corpus has {len(text)} characters; training needs at least {needed} "
            f"(one chunk of {config.seq_len + 1} plus a {config.val_fraction:.0%} validation split)"
        )
    n_val = validation_chars(len(text), config.val_fraction)
    return text[:-n_val], text[-n_val:]


def _stream_grid(ids: Tensor, streams: int) -> tuple[Tensor, Tensor]:
    """ids [M] -> inputs, targets [B, N]: B = `streams` contiguous streams of N = (M - 1) // B
    ids each; targets are inputs shifted by one. The few ids left over at the end go unused."""
    per_stream = (ids.numel() - 1) // streams
    used = streams * per_stream
    return ids[:used].view(streams, per_stream), ids[1 : used + 1].view(streams, per_stream)


def _chunks(inputs: Tensor, targets: Tensor, seq_len: int) -> Iterator[tuple[Tensor, Tensor]]:
    """[B, N] grids -> consecutive [B, T] chunks, left to right (the last may be shorter)."""
    for start in range(0, inputs.size(1), seq_len):
        yield inputs[:, start : start + seq_len], targets[:, start : start + seq_len]


@torch.no_grad()
def _mean_loss(
    model: CharRNN,
    ids: Tensor,
    *,
    seq_len: int,
    max_streams: int,
    device: torch.device,
    precision: str,
) -> tuple[float, int]:
    """ids [N] -> (mean nats/char of ids[1:] given what precedes each, characters counted).

    `precision` is a resolved one ("fp32" or "bf16"); the model's train/eval mode is kept."""
    streams = max(1, min(max_streams, (ids.numel() - 1) // max(seq_len, 1)))
    inputs, targets = _stream_grid(ids, streams)
    inputs, targets = inputs.to(device), targets.to(device)
    was_training = model.training
    model.eval()
    total, count, hidden = 0.0, 0, None
    for x, y in _chunks(inputs, targets, seq_len):
        with autocast(device, precision):
            _, loss, hidden = model(x, hidden, y)
        assert loss is not None
        total += float(loss) * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / max(count, 1), count


def _model_config(config: TrainConfig, vocab_size: int) -> CharRNNConfig:
    return CharRNNConfig(
        arch=config.arch,
        vocab_size=vocab_size,
        embed_dim=config.embed_dim,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dropout=config.dropout,
    )


def _detach(hidden: Hidden) -> Hidden:
    if isinstance(hidden, tuple):
        return (hidden[0].detach(), hidden[1].detach())
    return hidden.detach()


def _lr_at(config: TrainConfig, step: int, fraction_done: float) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction_done)))
    return config.lr * warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def _start(
    text: str, config: TrainConfig, init: Checkpoint | None, device: torch.device
) -> tuple[CharRNN, Vocab, TrainingStats]:
    """A fresh model for `text`, or `init` with its vocabulary grown to cover `text`."""
    if init is not None:
        vocab = init.vocab.extended(text)
        model = init.build_model(device)
        model.resize_vocab(len(vocab))  # new rows start as copies of <unk>'s
        return model, vocab, copy.deepcopy(init.stats)
    vocab = Vocab.build(text, max_size=config.max_vocab)
    model = CharRNN(_model_config(config, len(vocab))).to(device)
    return model, vocab, TrainingStats()


def _optimizer(model: CharRNN, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # No weight decay on biases or the embedding (the usual AdamW grouping): decay would
    # pull the embeddings of rarely seen characters toward zero.
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and not n.startswith("embed")]
    no_decay = [p for n, p in named if p.dim() < 2 or n.startswith("embed")]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.99),
        fused=device.type == "cuda",
    )


def train(
    text: str,
    config: TrainConfig,
    *,
    init: Checkpoint | None = None,
    on_progress: Callable[[Progress], bool | None] | None = None,
) -> TrainResult:
    """Train a model on `text` (or fine-tune `init` on it) within the step/time budget.

    `on_progress` is called from this thread after every step and every validation;
    returning False stops training and returns the best checkpoint so far with
    `cancelled=True` (TrainingCancelled if no validation has happened yet).
    """
    config.validate()
    train_text, val_text = _split(text, config)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    if config.num_threads is not None and device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)

    model, vocab, stats = _start(text, config, init, device)
    stats.device, stats.precision, stats.corpus_chars = str(device), precision, len(text)
    model.train()

    train_ids = torch.tensor(vocab.encode(train_text), dtype=torch.long)  # [N]
    val_ids = torch.tensor(vocab.encode(val_text[: config.max_eval_chars + 1]), dtype=torch.long)
    streams = max(1, min(config.batch_size, (train_ids.numel() - 1) // config.seq_len))
    inputs, targets = _stream_grid(train_ids, streams)  # [B, N] each
    inputs, targets = inputs.to(device), targets.to(device)
    optimizer = _optimizer(model, config, device)

    budget_seconds = config.max_minutes * 60.0 if config.max_minutes is not None else math.inf
    start = time.perf_counter()
    step, chars_run = 0, 0
    loss_sum, loss_count = 0.0, 0
    val_loss: float | None = None
    smoothed = math.nan  # exponential moving average of the training loss, for progress
    best_val, best_state, evals_since_best = math.inf, None, 0
    cancelled = stopped_early = False
    step_base = stats.steps
    prior_seconds = stats.train_seconds

    def validate_now(train_loss: float) -> None:
        nonlocal val_loss, best_val, best_state, evals_since_best
        val_loss, _ = _mean_loss(
            model,
            val_ids,
            seq_len=config.seq_len,
            max_streams=config.batch_size,
            device=device,
            precision=precision,
        )
        stats.val_loss_history.append((step_base + step, train_loss, val_loss))
        if val_loss < best_val:
            best_val, evals_since_best = val_loss, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            stats.best_val_loss = val_loss
        else:
            evals_since_best += 1

    def progress(elapsed: float) -> Progress:
        rate = chars_run / elapsed if elapsed > 0 else 0.0
        if config.max_steps is not None:
            total = config.max_steps
        else:
            total = step if elapsed <= 0 else max(step, round(step * budget_seconds / elapsed))
        if config.max_steps is not None and config.max_minutes is not None and elapsed > 0:
            total = min(total, max(step, round(step * budget_seconds / elapsed)))
        eta = (total - step) * (elapsed / step) if step else math.nan
        return Progress(
            step=step,
            total_steps=total,
            train_loss=smoothed,
            val_loss=val_loss,
            chars_per_sec=rate,
            eta_seconds=eta,
            elapsed_seconds=elapsed,
            best_val_loss=best_val if best_val < math.inf else None,
        )

    if init is not None:
        validate_now(math.nan)  # fine-tuning never returns something worse than its start

    last_eval_time = time.perf_counter()
    done = False
    while not done:
        hidden: Hidden | None = None  # each epoch walks the streams from their start
        for x, y in _chunks(inputs, targets, config.seq_len):  # [B, T] each
            elapsed = time.perf_counter() - start
            fraction = elapsed / budget_seconds
            if config.max_steps is not None:
                fraction = max(fraction, step / config.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(config, step, fraction)
            with autocast(device, precision):
                _, loss, carried = model(x, hidden, y)
            assert loss is not None
            hidden = _detach(carried)  # carry the state, not the graph, into the next chunk
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            chars_run += y.numel()
            # One host sync per step: negligible next to a BPTT chunk.
            loss_value = float(loss.detach())
            loss_sum += loss_value
            loss_count += 1
            smoothed = loss_value if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * loss_value

            now = time.perf_counter()
            elapsed = now - start
            out_of_budget = elapsed >= budget_seconds or (
                config.max_steps is not None and step >= config.max_steps
            )
            if (
                out_of_budget
                or step % config.eval_interval == 0
                or now - last_eval_time >= config.eval_seconds
            ):
                validate_now(loss_sum / loss_count)
                loss_sum, loss_count = 0.0, 0
                last_eval_time = time.perf_counter()
                if evals_since_best >= config.patience:
                    stopped_early = True
            if (
                on_progress is not None
                and on_progress(progress(time.perf_counter() - start)) is False
            ):
                cancelled = True
            if out_of_budget or stopped_early or cancelled:
                done = True
                break

    stats.steps = step_base + step
    stats.chars_seen += chars_run
    stats.train_seconds = prior_seconds + (time.perf_counter() - start)
    stats.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    if best_state is None:
        raise TrainingCancelled(
            "training was cancelled before the first validation; nothing was saved"
        )
    model.load_state_dict(best_state)
    model.eval()
    checkpoint = Checkpoint(config=model.config, vocab=vocab, state_dict=best_state, stats=stats)
    return TrainResult(
        checkpoint=checkpoint,
        best_val_loss=best_val,
        cancelled=cancelled,
        stopped_early=stopped_early,
        steps=step,
    )


def evaluate(
    ckpt: Checkpoint,
    text: str,
    *,
    device: str = "auto",
    precision: Precision = "fp32",
    seq_len: int = 256,
    batch_size: int = 32,
) -> EvalResult:
    """Mean loss of `text` under the model (each character after the first is predicted)."""
    if len(text) < 2:
        raise CorpusTooSmallError(
            f"the text has {len(text)} characters; evaluation needs at least 2"
        )
    dev = resolve_device(device)
    model = ckpt.build_model(dev)
    ids = torch.tensor(ckpt.vocab.encode(text), dtype=torch.long)
    nats, count = _mean_loss(
        model,
        ids,
        seq_len=seq_len,
        max_streams=batch_size,
        device=dev,
        precision=resolve_precision(precision, dev),
    )
    return EvalResult(nats_per_char=nats, bits_per_char=nats_to_bits(nats), chars=count)
