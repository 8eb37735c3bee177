"""`parrot train`, `parrot eval` and `parrot generate`: the model core from a terminal.

torch is imported inside the handlers so `parrot --help` stays fast. Bad input raises a
`ModelError`; bot/cli/__init__.py prints it as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Protocol

from models.archs import ARCHS
from models.config import PRECISIONS
from models.errors import CorpusError
from models.presets import DEFAULT


class Subcommands(Protocol):
    """What `register` needs of `ArgumentParser.add_subparsers()`'s result."""

    def add_parser(
        self, name: str, *, help: str | None = ..., description: str | None = ...
    ) -> argparse.ArgumentParser: ...


def _bounded(
    kind: type, low: float | None = None, high: float | None = None, *, low_open: bool = False
):
    """An argparse type that parses `kind` and rejects values outside [low, high] (exit 2)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}: {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}: {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def read_text(path: Path, *, what: str = "corpus") -> str:
    """UTF-8 text of `path`; a clear CorpusError when it is missing, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"{what} path is a directory, not a file: {path}") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{what} file {path} is not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if not text.strip():
        raise CorpusError(f"{what} file {path} is empty")
    return text


def register(subparsers: Subcommands) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)
    _register_generate(subparsers)


def _register_train(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "train",
        help="train (or fine-tune) a character-level model on a UTF-8 text file",
        description="Train a character-level GRU/LSTM/RNN on CORPUS.txt (last 10% held out for validation); "
        "the best checkpoint is written atomically to --out.",
    )
    p.add_argument("corpus", type=Path, metavar="CORPUS.txt")
    p.add_argument("--out", type=Path, required=True, metavar="CKPT", help="checkpoint to write")
    p.add_argument("--arch", choices=ARCHS, default=DEFAULT.arch)
    p.add_argument(
        "--minutes",
        type=_bounded(float, 0, 7 * 24 * 60, low_open=True),
        default=None,
        help=f"time budget (default {DEFAULT.max_minutes:g} unless --steps is given)",
    )
    p.add_argument("--steps", type=_bounded(int, 1), default=None, help="step budget")
    p.add_argument(
        "--init", type=Path, default=None, metavar="CKPT", help="fine-tune this checkpoint"
    )
    p.add_argument(
        "--device", default=DEFAULT.device, help=f"auto | cpu | cuda (default {DEFAULT.device})"
    )
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT.precision)
    p.add_argument("--seed", type=_bounded(int, 0, 2**63 - 1), default=DEFAULT.seed)
    p.add_argument("--hidden", type=_bounded(int, 1, 8192), default=DEFAULT.hidden_size)
    p.add_argument("--layers", type=_bounded(int, 1, 16), default=DEFAULT.num_layers)
    p.add_argument("--embed", type=_bounded(int, 1, 4096), default=DEFAULT.embed_dim)
    p.add_argument("--dropout", type=_bounded(float, 0, 0.99), default=DEFAULT.dropout)
    p.add_argument("--seq-len", type=_bounded(int, 2, 100_000), default=None)
    p.add_argument("--batch-size", type=_bounded(int, 1, 65_536), default=None)
    p.add_argument("--lr", type=_bounded(float, 0, 1, low_open=True), default=None)
    p.add_argument(
        "--val-fraction", type=_bounded(float, 0, 0.5, low_open=True), default=DEFAULT.val_fraction
    )
    p.add_argument("--threads", type=_bounded(int, 1, 1024), default=None, help="CPU threads")
    p.add_argument(
        "--weights-dtype",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="store weights smaller (loading converts back to fp32)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_train)


def _register_eval(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "eval", help="loss of a text under a checkpoint (nats and bits per char)"
    )
    p.add_argument("checkpoint", type=Path, metavar="CKPT")
    p.add_argument("text", type=Path, metavar="TEXT.txt")
    p.add_argument(
        "--json", action="store_true", help='print {"nats_per_char", "bits_per_char", "chars"}'
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(handler=_eval)


def _register_generate(subparsers: Subcommands) -> None:
    p = subparsers.add_parser("generate", help="continue a prompt with a checkpoint")
    p.add_argument("checkpoint", type=Path, metavar="CKPT")
    p.add_argument("--start", default="", help="the prompt (any Unicode; default: empty)")
    p.add_argument(
        "--length", type=_bounded(int, 1, 100_000), default=300, help="characters to generate"
    )
    p.add_argument("--temperature", type=_bounded(float, 0, 100), default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=_bounded(int, 0), default=0, help="0 = off")
    p.add_argument(
        "--top-p", type=_bounded(float, 0, 1, low_open=True), default=1.0, help="1 = off"
    )
    p.add_argument("--seed", type=_bounded(int, 0, 2**63 - 1), default=None)
    p.add_argument(
        "--stop", action="append", default=[], help="stop before this string (repeatable)"
    )
    p.add_argument("--device", default="cpu")
    p.set_defaults(handler=_generate)


def _train(args: argparse.Namespace) -> int:
    from models.checkpoint import load_checkpoint, save_checkpoint
    from models.config import TrainConfig
    from models.train import Progress, train

    text = read_text(args.corpus)
    init = load_checkpoint(args.init) if args.init is not None else None
    minutes = (
        args.minutes if args.minutes is not None or args.steps is not None else DEFAULT.max_minutes
    )
    overrides = {
        k: v
        for k, v in {"seq_len": args.seq_len, "batch_size": args.batch_size, "lr": args.lr}.items()
        if v is not None
    }
    config = TrainConfig(
        arch=args.arch,
        hidden_size=args.hidden,
        num_layers=args.layers,
        embed_dim=args.embed,
        dropout=args.dropout,
        max_minutes=minutes,
        max_steps=args.steps,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        num_threads=args.threads,
        **overrides,
    )
    if init is not None:
        print(
            f"fine-tuning {args.init} ({init.config.arch} {init.config.num_layers}x{init.config.hidden_size}); "
            "its shape wins over --arch/--hidden/--layers/--embed",
            file=sys.stderr,
        )

    bar: Any = None  # created at the first progress report, so errors print without a bar

    def on_progress(p: Progress) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=1000,
                desc="train",
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
                file=sys.stderr,
            )
        target = int(1000 * p.fraction)
        if target > bar.n:
            bar.update(target - bar.n)
        val = f"{p.val_loss:.3f}" if p.val_loss is not None else "-"
        bar.set_postfix_str(
            f"step {p.step}/{p.total_steps} loss {p.train_loss:.3f} val {val} "
            f"{p.chars_per_sec / 1000:.1f}k char/s",
            refresh=False,
        )

    try:
        result = train(text, config, init=init, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    import torch

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.weights_dtype]
    save_checkpoint(result.checkpoint, args.out, dtype=dtype)
    stats = result.checkpoint.stats
    note = " (stopped early)" if result.stopped_early else ""
    print(
        f"saved {args.out}: val {result.best_val_loss:.4f} nats/char ({result.best_val_bits:.4f} bits/char) "
        f"after {result.steps} steps, {stats.train_seconds:.0f}s on {stats.device} ({stats.precision}){note}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from models.checkpoint import load_checkpoint
    from models.train import evaluate

    ckpt = load_checkpoint(args.checkpoint)
    text = read_text(args.text, what="text")
    result = evaluate(ckpt, text, device=args.device)
    if args.json:
        print(
            json.dumps(
                {
                    "nats_per_char": result.nats_per_char,
                    "bits_per_char": result.bits_per_char,
                    "chars": result.chars,
                }
            )
        )
    else:
        print(
            f"{result.nats_per_char:.4f} nats/char  {result.bits_per_char:.4f} bits/char  over {result.chars} characters"
        )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from models.checkpoint import load_checkpoint
    from models.device import resolve_device
    from models.sample import SampleRequest, stream

    ckpt = load_checkpoint(args.checkpoint)
    request = SampleRequest(
        prompt=args.start,
        max_chars=args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=tuple(args.stop),
    )
    request.validate()
    device = resolve_device(args.device)
    sys.stdout.write(args.start)
    for chunk in stream(ckpt, request, device=device):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
