"""Dynamic batching benchmark: N concurrent /generate requests against one model.

Run from the repository root:
    .venv/bin/python -m benchmarks.bench_concurrency            # full run (about a minute)
    .venv/bin/python -m benchmarks.bench_concurrency --quick    # CI smoke run, a few seconds

Prints one JSON object:
- sequential: the same kind of request served one after another through the same Sampler
  (measured over `--sequential` requests; its throughput does not depend on N, so it is the
  baseline for every N): single-request latency (p50) and throughput in characters/s.
- concurrent[N] for N in 1, 8, 32, 128: N requests of `--chars` characters submitted at once;
  p50/p95 latency (call to last character), throughput (all characters / wall time), and
  the speed-up over sequential. Targets at N = 32: throughput >= 10x sequential and
  p95 <= 3x the single-request latency.
- guard: the same runs on a second copy of the model that has a verbatim index over a
  `--corpus-chars` corpus, interleaved with the plain runs, and what the guard adds:
  `time_inside_worker` times the guard's own code inside the sampling steps (guard time /
  the rest of the step time = the latency it adds, immune to other processes on the
  machine); `p50_latency_overhead_end_to_end` compares the two end to end (noisy on a
  shared machine). Target: <= 10% on /generate (the former is the one checked).
Every figure is the median over `--repeats` rounds.

The model is `bot/data/shakespeare.ckpt` when it exists, with the guard's index built over
the text it was trained on (`bot/data/tinyshakespeare.txt`), so the guard has real copies to
refuse; else (or with `--random-weights`) the default shape of `bot/core/config.py`
(`ModelConfig`) with random weights and an index over `--corpus-chars` of random text (it
never copies: the figure is then the cost of checking every character of every row).
`--checkpoint` picks another model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import string
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bot.core.config import ModelConfig
from bot.core.generation.sampler import Sampler
from bot.core.generation.verbatim import VerbatimIndex, index_path_for
from models.charrnn import CharRNN, CharRNNConfig
from models.checkpoint import Checkpoint, TrainingStats, load_checkpoint, save_checkpoint
from models.sample import SampleRequest
from models.vocab import Vocab

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "bot" / "data"
BUNDLED_CHECKPOINT = BUNDLED_DATA / "shakespeare.ckpt"
BUNDLED_CORPUS = BUNDLED_DATA / "tinyshakespeare.txt"  # what the bundled model was trained on
ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n"
PROMPT = "Once upon a time"
PLAIN, GUARDED = 1, 2  # server ids: the same weights, without and with a verbatim index


@dataclass(frozen=True)
class Active:
    id: int
    path: Path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def random_checkpoint(path: Path, hidden_size: int | None) -> None:
    shape = ModelConfig()
    arch = "gru" if shape.arch == "auto" else shape.arch
    vocab = Vocab.build(ALPHABET)
    config = CharRNNConfig(
        arch=arch,
        vocab_size=len(vocab),
        embed_dim=shape.embed_dim,
        hidden_size=hidden_size or shape.hidden_size,
        num_layers=shape.num_layers,
        dropout=shape.dropout,
    )
    torch.manual_seed(0)
    save_checkpoint(Checkpoint.from_model(CharRNN(config), vocab, TrainingStats()), path)


def corpus_text(vocab_chars: list[str], chars: int) -> str:
    rng = random.Random(0)
    usable = [c for c in vocab_chars[1:] if c.isprintable() or c == "\n"]
    return "".join(rng.choices(usable, k=chars))


def request(chars: int, seed: int) -> SampleRequest:
    return SampleRequest(PROMPT, max_chars=chars, temperature=0.8, top_p=0.95, seed=seed)


async def run_concurrent(sampler: Sampler, server: int, n: int, chars: int) -> dict[str, float]:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(sampler.generate(server, request(chars, seed)) for seed in range(n))
    )
    wall = time.perf_counter() - started
    latencies = [result.seconds for result in results]
    return {
        "wall_s": wall,
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "throughput_chars_per_s": n * chars / wall,
        "guard_resampled_chars": sum(result.blocked_copies for result in results),
    }


async def run_sequential(sampler: Sampler, server: int, n: int, chars: int) -> dict[str, float]:
    started = time.perf_counter()
    latencies = [(await sampler.generate(server, request(chars, s))).seconds for s in range(n)]
    wall = time.perf_counter() - started
    return {
        "latency_p50_s": percentile(latencies, 0.50),
        "throughput_chars_per_s": n * chars / wall,
    }


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(row[key] for row in rows), 4) for key in rows[0]}


async def measure(sampler: Sampler, args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """Plain (server 1) and guarded (server 2) runs interleaved, so both see the same load."""
    servers = (PLAIN, GUARDED)
    for server in servers:  # load the models and start their workers first
        await sampler.generate(server, request(5, 0))
    sequential: dict[int, list[dict[str, float]]] = {server: [] for server in servers}
    concurrent: dict[int, dict[int, list[dict[str, float]]]] = {s: {} for s in servers}
    for _ in range(args.repeats):
        for server in servers:
            sequential[server].append(
                await run_sequential(sampler, server, args.sequential, args.chars)
            )
        for n in args.concurrency:
            for server in servers:
                row = await run_concurrent(sampler, server, n, args.chars)
                concurrent[server].setdefault(n, []).append(row)
    report: dict[int, dict[str, Any]] = {}
    guard = sampler.stats().models[GUARDED]
    report[0] = {  # the guard's own time, measured inside the worker: immune to machine noise
        "guard_seconds": round(guard.guard_seconds, 4),
        "step_seconds": round(guard.step_seconds, 4),
        "added_to_sampling": round(
            guard.guard_seconds / (guard.step_seconds - guard.guard_seconds), 4
        ),
    }
    for server in servers:
        base = medians(sequential[server])
        rows: dict[str, Any] = {}
        for n, runs in concurrent[server].items():
            row = medians(runs)
            row["requests"] = n
            row["speedup_vs_sequential"] = round(
                row["throughput_chars_per_s"] / base["throughput_chars_per_s"], 2
            )
            row["p95_vs_single_latency"] = round(row["latency_p95_s"] / base["latency_p50_s"], 2)
            rows[str(n)] = row
        report[server] = {"sequential": {"requests": args.sequential, **base}, "concurrent": rows}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dynamic batching benchmark (JSON).")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run for CI")
    parser.add_argument(
        "--checkpoint", type=Path, help="default: the bundled one, else random weights"
    )
    parser.add_argument(
        "--random-weights", action="store_true", help="the default ModelConfig shape, untrained"
    )
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument(
        "--sequential", type=int, default=8, help="requests in the sequential baseline"
    )
    parser.add_argument(
        "--corpus-chars", type=int, default=1_000_000, help="size of the guarded corpus"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args(argv)
    hidden_size = None
    if args.quick:
        args.chars, args.concurrency, args.sequential, args.repeats = 20, [1, 4], 2, 1
        args.corpus_chars, hidden_size = 20_000, 64

    with tempfile.TemporaryDirectory() as tmp:
        plain_path = Path(tmp) / "plain.ckpt"
        bundled = BUNDLED_CHECKPOINT.exists() and not (args.quick or args.random_weights)
        source = args.checkpoint or (BUNDLED_CHECKPOINT if bundled else None)
        if source is not None:
            plain_path.write_bytes(Path(source).read_bytes())
        else:
            random_checkpoint(plain_path, hidden_size)
        checkpoint = load_checkpoint(plain_path)
        guarded_path = Path(tmp) / "guarded.ckpt"
        guarded_path.write_bytes(plain_path.read_bytes())
        if source == BUNDLED_CHECKPOINT and BUNDLED_CORPUS.exists():
            # The model's own training text: the guard really has copies to refuse.
            corpus = BUNDLED_CORPUS.read_text(encoding="utf-8")
            corpus_name = BUNDLED_CORPUS.name
        else:
            corpus = corpus_text(checkpoint.vocab.to_list(), args.corpus_chars)
            corpus_name = "random text"
        index = VerbatimIndex.build(corpus)
        index.save(index_path_for(guarded_path))
        paths = {PLAIN: plain_path, GUARDED: guarded_path}
        sampler = Sampler(
            lambda server_id: Active(server_id, paths[server_id]),
            device=args.device,
            torch_threads=args.threads,
        )
        try:
            results = asyncio.run(measure(sampler, args))
        finally:
            sampler.close()
    plain, guarded, guard_time = results[PLAIN], results[GUARDED], results[0]
    overhead = {
        n: round(
            guarded["concurrent"][n]["latency_p50_s"] / plain["concurrent"][n]["latency_p50_s"] - 1,
            4,
        )
        for n in plain["concurrent"]
    }
    key = "32" if "32" in plain["concurrent"] else max(plain["concurrent"], key=int)
    at = plain["concurrent"][key]
    report = {
        "benchmark": "concurrency",
        "quick": args.quick,
        "model": {
            "source": str(args.checkpoint or ("bundled" if source else "random weights")),
            **checkpoint.config.to_dict(),
            "params": checkpoint.param_count,
        },
        "device": args.device,
        "torch_threads": args.threads,
        "chars_per_request": args.chars,
        "sequential": plain["sequential"],
        "concurrent": plain["concurrent"],
        "guard": {
            "corpus": corpus_name,
            "corpus_chars": len(corpus),
            "index_bytes": index.nbytes,
            "concurrent": guarded["concurrent"],
            "sequential": guarded["sequential"],
            "p50_latency_overhead_end_to_end": overhead,
            "time_inside_worker": guard_time,
        },
        "targets": {
            "at_concurrency": int(key),
            "throughput_x_sequential": at["speedup_vs_sequential"],
            "throughput_target_met": at["speedup_vs_sequential"] >= 10,
            "p95_x_single": at["p95_vs_single_latency"],
            "p95_target_met": at["p95_vs_single_latency"] <= 3,
            "guard_overhead": guard_time["added_to_sampling"],
            "guard_target_met": guard_time["added_to_sampling"] <= 0.10,
        },
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
