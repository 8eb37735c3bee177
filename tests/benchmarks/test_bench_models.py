"""Smoke runs of the model benchmarks (training, quality, sampling); full figures are in the README."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    return json.loads(completed.stdout)


def test_train_benchmark_reports_ratios() -> None:
    report = _run("benchmarks.bench_train")
    assert (
        report["parrot"] > 0
        and report["plain_fp32_nn_gru"] > 0
        and report["ratio_vs_plain_fp32"] > 0
    )
    assert report["seed_size"]["ratio_vs_seed_tutorial"] > 0
    assert "load_average_1_5_15" in report["machine"]


def test_quality_benchmark_reports_val_loss_and_precision_comparison() -> None:
    report = _run("benchmarks.bench_quality")
    assert report["main"]["val_nats_per_char"] > 0
    assert {"fp32", "bf16", "bf16_minus_fp32_nats"} <= set(report["precision"])


def test_sampling_benchmark_reports_latency_and_batching() -> None:
    report = _run("benchmarks.bench_sampling")
    assert report["latency_ms"]["p50"] > 0
    assert report["batching"]["throughput_ratio"] > 0
