"""Smoke run of the batching benchmark (the full figures are in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_report() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_concurrency", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    report = json.loads(completed.stdout)
    assert set(report["concurrent"]) == {"1", "4"}
    for row in report["concurrent"].values():
        assert row["throughput_chars_per_s"] > 0
        assert row["latency_p95_s"] >= row["latency_p50_s"] > 0
    assert report["sequential"]["latency_p50_s"] > 0
    assert report["guard"]["index_bytes"] > 0
    assert set(report["targets"]) >= {"throughput_target_met", "p95_target_met", "guard_target_met"}
