"""Corpus store benchmark: ingest rate into SQLite, and memory while streaming a big corpus.

Run from the repository root (or with Parrot installed):
    .venv/bin/python -m benchmarks.bench_storage            # full run: a 100 MB corpus
    .venv/bin/python -m benchmarks.bench_storage --quick    # a few seconds, tiny sizes

Prints one JSON object:
- ingest: messages/s through `corpus.add_messages` in batches (one transaction per batch),
  against a naive baseline in the same run: one ORM insert and one commit per message.
  Target: >= 5,000 messages/s batched.
- stream: peak resident memory (and tracemalloc's peak of the Python heap while reading)
  of a fresh process that streams the whole corpus with
  `corpus_text.iter_corpus_text` (consuming it chunk by chunk), against a baseline process that
  loads every message with one query. Target: < 200 MB for a 100 MB corpus. Measured in
  child processes so that building the corpus does not count.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage import corpus, corpus_text
from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.db import make_engine, make_session_factory, upgrade_to_head
from bot.core.storage.tables import Message

SERVER = 1
WORDS = [
    "the",
    "a",
    "parrot",
    "says",
    "hello",
    "world",
    "tonight",
    "server",
    "channel",
    "message",
    "again",
    "really",
    "why",
    "how",
    "what",
    "when",
    "maybe",
    "yes",
    "no",
    "lol",
    "ok",
    "sure",
    "great",
    "thanks",
    "friend",
    "game",
    "play",
    "music",
    "cat",
    "dog",
    "code",
    "bug",
    "fix",
    "train",
    "model",
    "text",
    "learn",
    "write",
    "read",
    "night",
    "day",
    "time",
    "good",
    "bad",
    "new",
    "old",
    "big",
    "small",
]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_messages(
    first_id: int, count: int, rng: random.Random, mean_words: int
) -> list[IncomingMessage]:
    """Chat-like messages: a few words to a few hundred characters, 20 authors, 5 channels."""
    messages = []
    for offset in range(count):
        message_id = first_id + offset
        length = max(1, int(rng.expovariate(1 / mean_words)))
        messages.append(
            IncomingMessage(
                id=message_id,
                channel_id=100 + message_id % 5,
                author_id=1000 + rng.randrange(20),
                content=" ".join(rng.choices(WORDS, k=length)),
                created_at=EPOCH + timedelta(seconds=message_id),
            )
        )
    return messages


def bench_ingest(
    factory: sessionmaker[Session], total: int, batch_size: int, baseline_total: int
) -> dict[str, Any]:
    rng = random.Random(1)
    batches = [
        make_messages(1 + start, min(batch_size, total - start), rng, mean_words=12)
        for start in range(0, total, batch_size)
    ]
    started = time.perf_counter()
    inserted = 0
    for batch in batches:
        with factory.begin() as session:
            inserted += corpus.add_messages(session, SERVER, batch)
    batched_seconds = time.perf_counter() - started
    assert inserted == total, (inserted, total)

    naive = make_messages(10_000_000, baseline_total, rng, mean_words=12)
    started = time.perf_counter()
    for message in naive:
        with factory.begin() as session:
            session.add(
                Message(
                    id=message.id,
                    server_id=SERVER,
                    channel_id=message.channel_id,
                    author_id=message.author_id,
                    content=message.content,
                    created_at=message.created_at,
                )
            )
    naive_seconds = time.perf_counter() - started
    batched_rate = total / batched_seconds
    naive_rate = baseline_total / naive_seconds
    return {
        "messages": total,
        "batch_size": batch_size,
        "batched_messages_per_s": round(batched_rate),
        "baseline_one_commit_per_message": {
            "messages": baseline_total,
            "messages_per_s": round(naive_rate),
        },
        "speedup": round(batched_rate / naive_rate, 1),
        "target_messages_per_s": 5000,
        "meets_target": batched_rate >= 5000,
    }


def build_corpus(factory: sessionmaker[Session], target_chars: int) -> dict[str, Any]:
    rng = random.Random(2)
    next_id, chars, started = 1, 0, time.perf_counter()
    while chars < target_chars:
        batch = make_messages(next_id, 5000, rng, mean_words=60)  # ~350 chars per message
        with factory.begin() as session:
            corpus.add_messages(session, SERVER, batch)
        next_id += len(batch)
        chars += sum(len(m.content) + 1 for m in batch)
    with factory() as session:
        stats = corpus_text.corpus_stats(session, SERVER)
    return {
        "messages": stats.messages,
        "chars": stats.chars,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def run_child(url: str, mode: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_storage", "--child", mode, "--url", url],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    return json.loads(output)


def child(url: str, mode: str) -> dict[str, Any]:
    """Runs in a fresh process: stream (or load) the corpus, report peak memory."""
    engine = make_engine(url, begin_immediate=False)
    factory = make_session_factory(engine)
    with factory() as session:
        session.execute(select(1))  # connect before taking the baseline
        rss_before = _max_rss_mb()
        tracemalloc.start()  # Python allocations made by the streaming itself
        started = time.perf_counter()
        chars = 0
        largest_chunk = 0
        if mode == "stream":
            for chunk in corpus_text.iter_corpus_text(session, SERVER):
                chars += len(chunk)
                largest_chunk = max(largest_chunk, len(chunk))
        else:  # the naive baseline: every row at once, then one string
            contents = session.scalars(
                select(Message.content).where(Message.server_id == SERVER).order_by(Message.id)
            ).all()
            text = "".join(content + "\n" for content in contents)
            chars = largest_chunk = len(text)
            del contents, text
        seconds = time.perf_counter() - started
        heap_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    engine.dispose()
    return {
        "chars": chars,
        "seconds": round(seconds, 2),
        "mb_per_s": round(chars / 1e6 / seconds, 1),
        "largest_chunk_chars": largest_chunk,
        "python_heap_peak_mb": round(heap_peak / 1e6, 1),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_max_rss_mb(), 1),
    }


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Corpus store benchmark (prints JSON).")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--workdir", type=Path, help="where to put the database (default: temp)")
    parser.add_argument("--child", choices=["stream", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.url, args.child)))
        return 0

    ingest_total, baseline_total, corpus_mb = (
        (3_000, 200, 1) if args.quick else (50_000, 2_000, 100)
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        results: dict[str, Any] = {"quick": args.quick}
        ingest_url = f"sqlite:///{Path(workdir) / 'ingest.db'}"
        upgrade_to_head(ingest_url)
        engine = make_engine(ingest_url)
        results["ingest"] = bench_ingest(
            make_session_factory(engine), ingest_total, 1000, baseline_total
        )
        engine.dispose()

        stream_url = f"sqlite:///{Path(workdir) / 'stream.db'}"
        upgrade_to_head(stream_url)
        engine = make_engine(stream_url)
        built = build_corpus(make_session_factory(engine), corpus_mb * 1_000_000)
        engine.dispose()
        streamed = run_child(stream_url, "stream")
        loaded = run_child(stream_url, "load")
        results["stream"] = {
            "corpus": built,
            "iter_corpus_text": streamed,
            "baseline_load_all_at_once": loaded,
            "target_peak_rss_mb": 200,
            "meets_target": streamed["peak_rss_mb"] < 200,
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
