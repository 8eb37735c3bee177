"""The verbatim guard's index: peak memory and build time for 1 M and 20 M characters.

    .venv/bin/python -m benchmarks.bench_verbatim            # ~1 minute
    .venv/bin/python -m benchmarks.bench_verbatim --quick    # 1 M only, a few seconds

The text is drawn character by character from tinyshakespeare's character frequencies, so
almost every window is distinct: the worst case for the index's size (real chat repeats
itself and indexes smaller). Peak memory is what `tracemalloc` sees numpy allocate during
the build (numpy reports its buffers to it), not counting the input text.

Baseline in the same run: the build as it was on main before issue #12 (codes for the whole
text at once, then `np.unique(np.concatenate(parts))`). Target: under 300 MB at 20 M.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._common import emit, machine, tinyshakespeare
from bot.core.generation import verbatim
from bot.core.generation.verbatim import VerbatimIndex

MB = 1024 * 1024


def sample_text(chars: int, seed: int = 0) -> str:
    source = np.frombuffer(tinyshakespeare().encode("utf-32-le"), dtype="<u4")
    alphabet, counts = np.unique(source, return_counts=True)
    rng = np.random.default_rng(seed)
    codes = rng.choice(alphabet, size=chars, p=counts / counts.sum()).astype("<u4")
    return codes.tobytes().decode("utf-32-le")


def build_as_on_main(text: str, span: int) -> VerbatimIndex:
    """The pre-#12 algorithm, kept here only as the baseline."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64) + np.uint64(1)
    window = span + 1
    total = max(len(codes) - window + 1, 0)
    bits = verbatim._filter_bits(total)  # pyright: ignore[reportPrivateUsage]
    prefix_filter = np.zeros((1 << bits) // 8, dtype=np.uint8)
    shift = np.uint64(64 - bits)
    parts = []
    for start in range(0, total, 1 << 20):
        chunk = codes[start : start + (1 << 20) + window - 1]
        parts.append(verbatim._window_hashes(chunk, window))  # pyright: ignore[reportPrivateUsage]
        prefixes = verbatim._window_hashes(chunk[:-1], span)  # pyright: ignore[reportPrivateUsage]
        for position in verbatim._filter_positions(prefixes, shift):  # pyright: ignore[reportPrivateUsage]
            position = np.unique(position)
            np.bitwise_or.at(
                prefix_filter,
                position >> np.uint64(3),
                np.left_shift(1, position & np.uint64(7)).astype(np.uint8),
            )
    return VerbatimIndex(np.unique(np.concatenate(parts)), span, prefix_filter)


def measure(build: Callable[[str, int], VerbatimIndex], text: str, span: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    index = build(text, span)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "build_s": round(seconds, 2),
        "peak_mb": round(peak / MB, 1),
        "index_mb": round(index.nbytes / MB, 1),
        "windows": len(index),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="The verbatim index: memory and build time.")
    parser.add_argument("--quick", action="store_true", help="1 M characters only")
    parser.add_argument("--span", type=int, default=verbatim.DEFAULT_SPAN)
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 20_000_000]
    results = []
    for chars in sizes:
        text = sample_text(chars)
        now = measure(lambda t, s: VerbatimIndex.build(t, s), text, args.span)
        main_ = measure(build_as_on_main, text, args.span)
        results.append(
            {
                "chars": chars,
                "parrot": now,
                "baseline_main": main_,
                "peak_ratio": round(now["peak_mb"] / main_["peak_mb"], 2),
                "target_peak_mb": 300 if chars == 20_000_000 else None,
            }
        )
        del text
    emit(
        {"benchmark": "verbatim_index", "machine": machine(), "span": args.span, "results": results}
    )


if __name__ == "__main__":
    main()
