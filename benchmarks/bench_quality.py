"""Quality: validation nats/char on tinyshakespeare after a fixed training time.

    .venv/bin/python -m benchmarks.bench_quality                       # 10-minute run (+ precision check)
    .venv/bin/python -m benchmarks.bench_quality --checkpoint bot/data/shakespeare.ckpt
                                                                       # score a model made by `parrot train`
    .venv/bin/python -m benchmarks.bench_quality --quick               # smoke run, seconds

Split as nanoGPT: first 90% train, last 10% validation (111,540 characters). The score is
`models.train.evaluate` in float32 on the whole validation text, whatever precision the
model was trained in. Target on this 2-core CPU: <= 1.45 nats/char after 10 minutes.

`precision`: the same model trained for `--compare-minutes` in fp32 and in bf16 autocast
(same seed, same data), to show what reduced precision costs (or gains, per minute) on this
CPU.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import emit, machine, tinyshakespeare
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.config import TrainConfig
from models.train import evaluate, train


def split(text: str) -> tuple[str, str]:
    n_train = int(len(text) * 0.9)
    return text[:n_train], text[n_train:]


def score(ckpt: Checkpoint, val_text: str) -> dict[str, Any]:
    result = evaluate(ckpt, val_text, device="cpu", precision="fp32")
    stats = ckpt.stats
    return {
        "val_nats_per_char": round(result.nats_per_char, 4),
        "val_bits_per_char": round(result.bits_per_char, 4),
        "val_chars": result.chars,
        "model": f"{ckpt.config.arch} {ckpt.config.num_layers}x{ckpt.config.hidden_size}, embed {ckpt.config.embed_dim}",
        "params": ckpt.param_count,
        "train_seconds": round(stats.train_seconds, 1),
        "steps": stats.steps,
        "chars_seen": stats.chars_seen,
        "epochs": round(stats.chars_seen / (0.9 * stats.corpus_chars), 2)
        if stats.corpus_chars
        else None,
        "trained_on": f"{stats.device} ({stats.precision})",
    }


def run(text: str, config: TrainConfig) -> tuple[Checkpoint, dict[str, Any]]:
    # `train` holds out the last val_fraction itself: the same 90/10 split.
    result = train(text, config)
    _, val_text = split(text)
    return result.checkpoint, score(result.checkpoint, val_text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--compare-minutes", type=float, default=2.0, help="budget of each fp32/bf16 run (0: skip)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="score this checkpoint instead of training"
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="write the main run's checkpoint here"
    )
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = tinyshakespeare()
    config = TrainConfig(
        hidden_size=args.hidden, num_layers=args.layers, max_minutes=args.minutes, device="cpu"
    )
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size)
    if args.seq_len:
        config = replace(config, seq_len=args.seq_len)
    if args.quick:
        text = text[:40_000]
        config = replace(
            config,
            hidden_size=32,
            num_layers=1,
            embed_dim=16,
            batch_size=8,
            seq_len=32,
            max_minutes=None,
            max_steps=20,
        )
        args.compare_minutes = 0.05
    _, val_text = split(text)
    report: dict[str, Any] = {
        "benchmark": "quality_tinyshakespeare",
        "quick": args.quick,
        "split": "90/10 (nanoGPT)",
    }
    if args.checkpoint is not None:
        report["main"] = {
            "checkpoint": str(args.checkpoint),
            **score(load_checkpoint(args.checkpoint), val_text),
        }
    else:
        ckpt, report["main"] = run(text, config)
        report["main"]["budget_minutes"] = config.max_minutes
        if args.save is not None:
            save_checkpoint(ckpt, args.save)
    if args.compare_minutes > 0:
        comparison: dict[str, Any] = {"budget_minutes": args.compare_minutes}
        for precision in ("fp32", "bf16"):
            short = replace(
                config, precision=precision, max_steps=None, max_minutes=args.compare_minutes
            )
            if args.quick:
                short = replace(short, max_minutes=None, max_steps=10)
            _, comparison[precision] = run(text, short)
        fp32, bf16 = (
            comparison["fp32"]["val_nats_per_char"],
            comparison["bf16"]["val_nats_per_char"],
        )
        comparison["bf16_minus_fp32_nats"] = round(bf16 - fp32, 4)
        comparison["bf16_chars_seen_ratio"] = round(
            comparison["bf16"]["chars_seen"] / max(1, comparison["fp32"]["chars_seen"]), 2
        )
        report["precision"] = comparison
    report["target"] = "<= 1.45 nats/char after 10 minutes on the 2-core CPU"
    report["reference"] = {"nanoGPT_transformer_gpu": 1.4697, "nats_to_bits": 1 / math.log(2)}
    report["machine"] = machine()
    emit(report)


if __name__ == "__main__":
    main()
