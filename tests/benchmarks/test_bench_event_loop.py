"""Smoke run of the event-loop lag benchmark (the full figures are in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_report() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_event_loop", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=True,
    )
    report = json.loads(completed.stdout)
    for window in ("idle", "training"):
        assert report[window]["samples"] > 0
        assert report[window]["max_ms"] >= report[window]["p99_ms"] >= report[window]["p50_ms"]
    assert report["run_status_after_cancel"] == "cancelled"
    assert isinstance(report["target_met"], bool)
