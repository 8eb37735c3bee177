"""Many servers at once: 200 servers, each with its own 2x256 model, each fire one request
within 2 s. Peak memory and completion times with the sampler's bounded cache, against the
same burst with the bound lifted (every model resident at once: what main did, since pinned
entries did not count toward the cap), each in a fresh process so peak RSS is its own.

    .venv/bin/python -m benchmarks.bench_many_servers             # ~2-4 minutes
    .venv/bin/python -m benchmarks.bench_many_servers --servers 40  # quicker

The acknowledgement itself no longer waits on anything (/generate defers before any
database read or model load; tests/bot/exts/test_generate.py), so the figures here are what
follows it: how long until each server's text is done, and what memory that takes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import emit, machine, percentile

REQUEST_CHARS = 100
BURST_SECONDS = 2.0


@dataclass(frozen=True)
class Model:
    id: int
    path: Path


async def burst(servers: int, cache_size: int, directory: Path) -> dict[str, Any]:
    from bot.core.generation.sampler import Sampler
    from models.sample import SampleRequest

    sampler = Sampler(
        lambda server: Model(server, directory / f"{server}.ckpt"),
        cache_size=cache_size,
        cache_mb=10**6,
        torch_threads=1,
    )
    rng = random.Random(0)
    offsets = sorted(rng.uniform(0, BURST_SECONDS) for _ in range(servers))
    started = time.perf_counter()
    done: list[float] = []

    async def one(server: int, offset: float) -> None:
        await asyncio.sleep(offset)
        asked = time.perf_counter()
        request = SampleRequest("Once upon a time", max_chars=REQUEST_CHARS, seed=server)
        await sampler.generate(server, request)
        done.append(time.perf_counter() - asked)

    await asyncio.gather(*(one(s, o) for s, o in enumerate(offsets, start=1)))
    total = time.perf_counter() - started
    sampler.close()
    return {
        "cache_size": cache_size,
        "completion_p50_s": round(percentile(done, 50), 2),
        "completion_p95_s": round(percentile(done, 95), 2),
        "all_done_s": round(total, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def make_models(servers: int, directory: Path) -> None:
    from benchmarks.bench_concurrency import random_checkpoint

    first = directory / "1.ckpt"
    random_checkpoint(first, 256)
    for server in range(2, servers + 1):
        shutil.copyfile(first, directory / f"{server}.ckpt")


def main() -> None:
    parser = argparse.ArgumentParser(description="200 servers' /generate at once")
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--cache-size", type=int, default=8, help="the bounded run's cap")
    parser.add_argument("--child", nargs=2, metavar=("CACHE_SIZE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(burst(args.servers, int(args.child[0]), Path(args.child[1])))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        make_models(args.servers, directory)
        runs = {}
        for name, cache in (("bounded", args.cache_size), ("unbounded_baseline", args.servers)):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_many_servers",
                    "--servers",
                    str(args.servers),
                    "--child",
                    str(cache),
                    str(directory),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    emit(
        {
            "benchmark": "many_servers",
            "servers": args.servers,
            "request_chars": REQUEST_CHARS,
            "burst_seconds": BURST_SECONDS,
            "machine": machine(),
            "runs": runs,
        }
    )


if __name__ == "__main__":
    main()
