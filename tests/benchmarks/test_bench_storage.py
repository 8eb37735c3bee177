"""Smoke run of the storage benchmark (the full figures are in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_report(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_storage", "--quick", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    report = json.loads(completed.stdout)
    ingest = report["ingest"]
    assert ingest["batched_messages_per_s"] > 0
    assert ingest["baseline_one_commit_per_message"]["messages_per_s"] > 0
    stream = report["stream"]
    built = stream["corpus"]["chars"]
    assert built > 0
    assert stream["iter_corpus_text"]["chars"] == built
    assert stream["baseline_load_all_at_once"]["chars"] == built
    assert stream["iter_corpus_text"]["peak_rss_mb"] > 0
    assert {"meets_target", "target_peak_rss_mb"} <= set(stream)
