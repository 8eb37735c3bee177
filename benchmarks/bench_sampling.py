"""Sampling speed: latency of one 300-character request, and 32 prompts batched vs one by one.

    .venv/bin/python -m benchmarks.bench_sampling              # ~1 minute
    .venv/bin/python -m benchmarks.bench_sampling --quick      # smoke run, a few seconds

Uses the bundled checkpoint (bot/data/shakespeare.ckpt) when present, else a randomly
initialised model of the default shape (speed does not depend on the weights).

1. latency: p50/p95 wall time of `sample_batch(model, [one request])` for 300 characters
   (priming the prompt included), against a plain loop over `nn.GRU` with T=1 and
   `torch.multinomial` in the same run. Target: p50 <= 100 ms for the default model.
2. batching: 32 prompts of different lengths and settings sampled together in one
   BatchSampler against the same 32 sampled one after another. Target: >= 10x throughput.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks._common import REPO, emit, machine, percentile, tinyshakespeare
from models.charrnn import CharRNN, CharRNNConfig
from models.checkpoint import load_checkpoint
from models.sample import SampleRequest, sample_batch
from models.vocab import Vocab

BUNDLED = REPO / "bot" / "data" / "shakespeare.ckpt"


def load_model(
    path: Path | None, hidden: int, layers: int, arch: str
) -> tuple[CharRNN, Vocab, str]:
    if path is not None and path.is_file():
        ckpt = load_checkpoint(path)
        return (
            ckpt.build_model(),
            ckpt.vocab,
            str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
        )
    torch.manual_seed(0)
    vocab = Vocab.build(tinyshakespeare())
    config = CharRNNConfig(arch=arch, vocab_size=len(vocab), hidden_size=hidden, num_layers=layers)  # type: ignore[arg-type]
    return CharRNN(config).eval(), vocab, f"random {arch} {layers}x{hidden}"


@torch.inference_mode()
def plain_loop(model: CharRNN, vocab: Vocab, prompt: str, length: int) -> str:
    """What a tutorial does: nn.GRU over the prompt, then nn.GRU with T=1 per character."""
    idx = torch.tensor([vocab.encode(prompt)])
    out, hidden = model.rnn(model.embed(idx))
    logits = model.head(out[:, -1])
    chars = []
    for _ in range(length):
        probs = torch.softmax(logits / 0.8, dim=-1)
        token = torch.multinomial(probs, 1)
        chars.append(int(token))
        out, hidden = model.rnn(model.embed(token), hidden)
        logits = model.head(out[:, -1])
    return vocab.decode(chars)


def timed(fn: object, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--arch", default="gru")
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.checkpoint, args.hidden, args.layers, args.length, args.batch = None, 64, 1, 50, 8
    repeats = args.repeats or (3 if args.quick else 21)
    model, vocab, source = load_model(args.checkpoint, args.hidden, args.layers, args.arch)
    request = SampleRequest("ROMEO:", max_chars=args.length, temperature=0.8, seed=1)

    sample_batch(
        model, [request], vocab=vocab, precision=args.precision
    )  # warm-up (allocator, oneDNN primitives)
    ours = timed(
        lambda: sample_batch(model, [request], vocab=vocab, precision=args.precision), repeats
    )
    plain = timed(lambda: plain_loop(model, vocab, "ROMEO:", args.length), max(3, repeats // 3))

    prompts = [
        ("ROMEO:", "To be, or not", "First Citizen:\nBefore we proceed", "", "KING")[i % 5]
        * (1 + i % 3)
        for i in range(args.batch)
    ]
    requests = [
        SampleRequest(
            p,
            max_chars=args.length,
            temperature=0.6 + 0.1 * (i % 5),
            top_k=(0, 20)[i % 2],
            top_p=(1.0, 0.95)[i % 3 == 0],
            seed=i,
        )
        for i, p in enumerate(prompts)
    ]
    start = time.perf_counter()
    for r in requests:
        sample_batch(model, [r], vocab=vocab, precision=args.precision)
    sequential = time.perf_counter() - start
    batched = min(
        timed(
            lambda: sample_batch(model, requests, vocab=vocab, precision=args.precision),
            2 if not args.quick else 1,
        )
    )
    total_chars = args.length * len(requests)
    emit(
        {
            "benchmark": "sampling",
            "quick": args.quick,
            "model": source,
            "params": model.param_count,
            "precision": args.precision,
            "length": args.length,
            "latency_ms": {
                "p50": round(1000 * percentile(ours, 50), 1),
                "p95": round(1000 * percentile(ours, 95), 1),
                "repeats": repeats,
                "plain_nn_gru_loop_p50": round(1000 * percentile(plain, 50), 1),
            },
            "batching": {
                "prompts": len(requests),
                "sequential_seconds": round(sequential, 3),
                "batched_seconds": round(batched, 3),
                "sequential_chars_per_sec": round(total_chars / sequential),
                "batched_chars_per_sec": round(total_chars / batched),
                "throughput_ratio": round(sequential / batched, 1),
            },
            "targets": {"latency_p50_ms": "<= 100 (300 chars)", "throughput_ratio_32": ">= 10"},
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
