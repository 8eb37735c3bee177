"""Training throughput: Parrot's trainer against two baselines, in the same run.

    .venv/bin/python -m benchmarks.bench_train            # ~2-3 minutes
    .venv/bin/python -m benchmarks.bench_train --quick    # smoke run, a few seconds

Throughput is "useful characters per second": characters that are a training target per
second. Measured after a warm-up, on tinyshakespeare.

1. `parrot`: models.train.train (truncated BPTT over streams, carried hidden state, bf16
   autocast where the CPU has native bf16) against `plain_fp32`: a plain fp32 PyTorch loop
   of the same model size (nn.Embedding + nn.GRU + nn.Linear, the same streams, batch and
   chunk length, AdamW). Target: >= 2x.
2. At the seed tutorial's size (one GRU(128)): `parrot` against `seed_tutorial`, the
   Keras-style approach: one-hot 40-character windows taken every 3 characters, each
   predicting only the next character (one useful target per 40-step sequence), batch 128.
   Target: >= 50x.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._common import emit, machine, tinyshakespeare
from models.config import TrainConfig
from models.train import Progress, train
from models.vocab import Vocab


def parrot_rate(text: str, config: TrainConfig, warmup: int, steps: int) -> dict[str, Any]:
    marks: dict[int, tuple[float, int]] = {}
    chars = 0
    per_step = config.batch_size * config.seq_len

    def on_progress(p: Progress) -> None:
        nonlocal chars
        if p.step in (warmup, warmup + steps):
            marks[p.step] = (time.perf_counter(), p.step)

    result = train(text, config, on_progress=on_progress)
    (t0, s0), (t1, s1) = marks[warmup], marks[warmup + steps]
    chars = (s1 - s0) * per_step
    return {"chars_per_sec": chars / (t1 - t0), "precision": result.checkpoint.stats.precision}


class PlainGRU(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.GRU(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out, new_h = self.rnn(self.embed(x), h)
        return self.head(out), new_h


def _timed(step: Callable[[], int], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    chars = sum(step() for _ in range(steps))
    return chars / (time.perf_counter() - start)


def plain_fp32_rate(text: str, config: TrainConfig, warmup: int, steps: int) -> float:
    """The loop one writes from the PyTorch docs: fp32, nn.GRU, same streams and sizes."""
    torch.manual_seed(0)
    vocab = Vocab.build(text)
    ids = torch.tensor(vocab.encode(text), dtype=torch.long)
    b, t = config.batch_size, config.seq_len
    n = (ids.numel() - 1) // b
    inputs, targets = ids[: b * n].view(b, n), ids[1 : b * n + 1].view(b, n)
    model = PlainGRU(len(vocab), config.embed_dim, config.hidden_size, config.num_layers)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    state = {"pos": 0, "h": None}

    def step() -> int:
        pos = state["pos"]
        if pos + t > n:
            pos, state["h"] = 0, None
        x, y = inputs[:, pos : pos + t], targets[:, pos : pos + t]
        logits, h = model(x, state["h"])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["h"], state["pos"] = h.detach(), pos + t
        return y.numel()

    return _timed(step, warmup, steps)


class SeedModel(nn.Module):
    """Keras `Sequential([GRU(128, input_shape=(40, V)), Dense(V, softmax)])`."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(vocab, 128, batch_first=True)
        self.head = nn.Linear(128, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def seed_tutorial_rate(text: str, warmup: int, steps: int, batch: int = 128) -> float:
    """One-hot windows of 40 characters every 3 characters, one target (the next char) each."""
    torch.manual_seed(0)
    vocab = Vocab.build(text)
    ids = torch.tensor(vocab.encode(text), dtype=torch.long)
    starts = torch.arange(0, ids.numel() - 41, 3)
    model = SeedModel(len(vocab))
    opt = torch.optim.RMSprop(model.parameters(), lr=0.01)  # the tutorial's optimiser
    state = {"i": 0}
    offsets = torch.arange(40)

    def step() -> int:
        i = state["i"] % max(1, starts.numel() - batch)
        window_starts = starts[i : i + batch]
        windows = ids[window_starts[:, None] + offsets]  # [B, 40]
        x = F.one_hot(windows, len(vocab)).float()  # [B, 40, V] like the tutorial's x tensor
        y = ids[window_starts + 40]  # [B]: only the next character is a target
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["i"] = i + batch
        return y.numel()

    return _timed(step, warmup, steps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument(
        "--seed-size-batch",
        type=int,
        default=256,
        help="parrot's batch (streams) for the GRU(128) comparison",
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = tinyshakespeare()
    if args.quick:
        text = text[:60_000]
        args.hidden, args.layers, args.batch_size, args.seq_len = 64, 1, 8, 32
    steps = args.steps or (3 if args.quick else 12)
    warmup = 1 if args.quick else 2
    seed_steps = 3 if args.quick else 30

    def config(
        hidden: int, layers: int, batch_size: int | None = None, seq_len: int | None = None
    ) -> TrainConfig:
        return TrainConfig(
            hidden_size=hidden,
            num_layers=layers,
            batch_size=batch_size or args.batch_size,
            seq_len=seq_len or args.seq_len,
            max_minutes=None,
            max_steps=warmup + steps + 1,  # the final validation falls outside the timed steps
            eval_interval=10_000,
            eval_seconds=1e9,
            max_eval_chars=2_048,  # the one final validation should not count much
            dropout=0.0,
        )

    ours = parrot_rate(text, config(args.hidden, args.layers), warmup, steps)
    plain = plain_fp32_rate(text, config(args.hidden, args.layers), warmup, steps)
    small_batch = args.batch_size if args.quick else args.seed_size_batch
    ours_small = parrot_rate(
        text, config(128, 1, small_batch, None if args.quick else 128), warmup, steps
    )
    seed = seed_tutorial_rate(text, warmup, seed_steps)
    emit(
        {
            "benchmark": "train_throughput",
            "unit": "useful characters (training targets) per second",
            "quick": args.quick,
            "model": f"gru {args.layers}x{args.hidden}, embed 64",
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "parrot": round(ours["chars_per_sec"]),
            "parrot_precision": ours["precision"],
            "plain_fp32_nn_gru": round(plain),
            "ratio_vs_plain_fp32": round(ours["chars_per_sec"] / plain, 2),
            "seed_size": {
                "model": "gru 1x128",
                "parrot_batch_size": small_batch,
                "parrot": round(ours_small["chars_per_sec"]),
                "seed_tutorial_onehot_windows": round(seed, 1),
                "ratio_vs_seed_tutorial": round(ours_small["chars_per_sec"] / seed, 1),
            },
            "targets": {"ratio_vs_plain_fp32": ">= 2", "ratio_vs_seed_tutorial": ">= 50"},
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
