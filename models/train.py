"""Training: truncated backpropagation through time over the whole corpus.

The training text is cut into `batch_size` contiguous streams, laid side by side as a
[B, N] grid, and walked left to right in `seq_len` chunks. The hidden state of each
stream is carried (detached) from one chunk to the next, so the model sees context longer
than a chunk and every character is a target exactly once per epoch (unlike overlapping
fixed windows, which waste most of the compute). AdamW, gradient clipping, a linear warmup
then cosine decay to the step/time budget, periodic validation on the last
`val_fraction` of the text, best-checkpoint keeping and early stopping.

Precision: bf16 autocast on CUDA, and on CPUs with native bf16 support (AVX512-BF16/AMX),
where it roughly doubles throughput at no measurable loss in quality (see
benchmarks/bench_quality.py); master weights and the loss stay float32.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import torch
from torch import Tensor

from models.charrnn import ARCHS, Arch, CharRNN, CharRNNConfig, Hidden
from models.checkpoint import Checkpoint, TrainingStats
from models.errors import CorpusTooSmallError, InvalidSettingError, TrainingCancelled
from models.vocab import DEFAULT_MAX_SIZE, Vocab

Precision = Literal["auto", "fp32", "bf16"]
LN2 = math.log(2.0)


@dataclass(frozen=True)
class TrainConfig:
    # Model shape (ignored when fine-tuning: the init checkpoint's shape wins).
    arch: Arch = "gru"
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    # Optimisation.
    seq_len: int = 64  # chunk length of truncated BPTT
    batch_size: int = 32  # parallel streams (small: more updates per minute on a small CPU)
    lr: float = 3e-3
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at the end of the budget
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # Data and budget.
    val_fraction: float = 0.1  # the last part of the text
    max_minutes: float | None = 10.0
    max_steps: int | None = None
    eval_interval: int = 100  # steps between validations (also at least every eval_seconds)
    eval_seconds: float = 60.0
    max_eval_chars: int = 131_072  # validation during training uses at most this much of the split
    patience: int = 6  # validations without improvement before stopping early
    seed: int = 1337
    max_vocab: int = DEFAULT_MAX_SIZE
    # Hardware.
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = "auto"  # auto: bf16 where the hardware has it, else fp32
    num_threads: int | None = None  # CPU threads; None leaves torch's default

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InvalidSettingError(message)

        need(self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}")
        need(1 <= self.embed_dim <= 4096, "embed_dim must be between 1 and 4096")
        need(1 <= self.hidden_size <= 8192, "hidden size must be between 1 and 8192")
        need(1 <= self.num_layers <= 16, "layers must be between 1 and 16")
        need(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        need(2 <= self.seq_len <= 100_000, "seq_len must be between 2 and 100000")
        need(1 <= self.batch_size <= 65_536, "batch_size must be between 1 and 65536")
        need(0.0 < self.lr <= 1.0, "lr must be in (0, 1]")
        need(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(self.weight_decay >= 0.0, "weight_decay must be >= 0")
        need(self.grad_clip > 0.0, "grad_clip must be > 0")
        need(0.0 < self.val_fraction <= 0.5, "val_fraction must be in (0, 0.5]")
        need(
            self.max_minutes is None or 0.0 < self.max_minutes <= 7 * 24 * 60,
            "--minutes must be > 0 (and at most a week)",
        )
        need(self.max_steps is None or self.max_steps >= 1, "--steps must be >= 1")
        need(
            self.max_minutes is not None or self.max_steps is not None, "give a time or step budget"
        )
        need(self.eval_interval >= 1, "eval_interval must be >= 1")
        need(self.eval_seconds > 0, "eval_seconds must be > 0")
        need(self.max_eval_chars >= 2, "max_eval_chars must be >= 2")
        need(self.patience >= 1, "patience must be >= 1")
        need(2 <= self.max_vocab <= 1_114_112, "max_vocab must be between 2 and 1114112")
        need(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        need(self.num_threads is None or self.num_threads >= 1, "num_threads must be >= 1")

    def model_config(self, vocab_size: int) -> CharRNNConfig:
        return CharRNNConfig(
            arch=self.arch,
            vocab_size=vocab_size,
            embed_dim=self.embed_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
        )


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
        return self.best_val_loss / LN2


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    bits_per_char: float
    chars: int


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidSettingError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidSettingError("CUDA was requested but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise InvalidSettingError(f"unsupported device {name!r} (use auto, cpu or cuda)")
    return device


def cpu_has_bf16() -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16"]:
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        return "bf16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _detach(hidden: Hidden) -> Hidden:
    if isinstance(hidden, tuple):
        return (hidden[0].detach(), hidden[1].detach())
    return hidden.detach()


def _stream_grid(ids: Tensor, streams: int) -> tuple[Tensor, Tensor]:
    """ids [N] -> inputs, targets [S, n]: S contiguous streams; targets are inputs shifted by one."""
    per_stream = (ids.numel() - 1) // streams
    used = streams * per_stream
    return ids[:used].view(streams, per_stream), ids[1 : used + 1].view(streams, per_stream)


def _chunks(inputs: Tensor, targets: Tensor, seq_len: int) -> Iterator[tuple[Tensor, Tensor]]:
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
    """Mean nats/char of ids[1:] given ids, walking streams with carried hidden state."""
    streams = max(1, min(max_streams, (ids.numel() - 1) // max(seq_len, 1)))
    inputs, targets = _stream_grid(ids, streams)
    inputs, targets = inputs.to(device), targets.to(device)
    was_training = model.training
    model.eval()
    total, count, hidden = 0.0, 0, None
    for x, y in _chunks(inputs, targets, seq_len):
        with _autocast(device, precision):
            _, loss, hidden = model(x, hidden, y)
        assert loss is not None
        total += float(loss) * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / max(count, 1), count


def minimum_corpus_chars(config: TrainConfig) -> int:
    """Smallest text `train` accepts: one chunk (seq_len + 1) for training plus 2 for validation."""
    train_min = config.seq_len + 1
    return math.ceil(max(train_min / (1.0 - config.val_fraction), train_min + 2))


def validation_chars(text_chars: int, val_fraction: float) -> int:
    """Length of the validation split of a `text_chars`-long text: its last `val_fraction`
    (at least 2 characters). Callers comparing models on the same text cut it with this."""
    return max(2, int(text_chars * val_fraction))


def _split(text: str, config: TrainConfig) -> tuple[str, str]:
    needed = minimum_corpus_chars(config)
    if len(text) < needed:
        raise CorpusTooSmallError(
            f"the corpus has {len(text)} characters; training needs at least {needed} "
            f"(one chunk of {config.seq_len + 1} plus a {config.val_fraction:.0%} validation split)"
        )
    n_val = validation_chars(len(text), config.val_fraction)
    return text[:-n_val], text[-n_val:]


def _lr_at(config: TrainConfig, step: int, fraction_done: float) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction_done)))
    return config.lr * warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


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

    if init is not None:
        vocab = init.vocab.extended(text)
        model = init.build_model(device)
        model.resize_vocab(len(vocab))  # new rows start as copies of <unk>'s
        stats = copy.deepcopy(init.stats)
    else:
        vocab = Vocab.build(text, max_size=config.max_vocab)
        model = CharRNN(config.model_config(len(vocab))).to(device)
        stats = TrainingStats()
    stats.device, stats.precision, stats.corpus_chars = str(device), precision, len(text)
    model.train()

    train_ids = torch.tensor(vocab.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(vocab.encode(val_text[: config.max_eval_chars + 1]), dtype=torch.long)
    streams = max(1, min(config.batch_size, (train_ids.numel() - 1) // config.seq_len))
    inputs, targets = _stream_grid(train_ids, streams)
    inputs, targets = inputs.to(device), targets.to(device)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embed")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("embed")]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.99),
        fused=device.type == "cuda",
    )

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
        for x, y in _chunks(inputs, targets, config.seq_len):
            elapsed = time.perf_counter() - start
            fraction = elapsed / budget_seconds
            if config.max_steps is not None:
                fraction = max(fraction, step / config.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(config, step, fraction)
            with _autocast(device, precision):
                _, loss, carried = model(x, hidden, y)
            assert loss is not None
            hidden = _detach(carried)  # carry the state, not the graph, into the next chunk
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            chars_run += y.numel()
            loss_value = float(
                loss.detach()
            )  # one host sync per step; negligible next to a BPTT chunk
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
    return EvalResult(nats_per_char=nats, bits_per_char=nats / LN2, chars=count)
