"""Which device and precision a run uses, decided once for training, evaluation and sampling.

Precision: bf16 autocast on CUDA, and on CPUs with native bf16 support (AVX512-BF16/AMX),
where it roughly doubles training throughput at no measurable loss in quality (see
benchmarks/bench_quality.py); elsewhere bf16 is emulated and slower, so "auto" means fp32.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from models.errors import InvalidSettingError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidSettingError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidSettingError("CUDA was requested but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise InvalidSettingError(f"unsupported device {name!r} (use auto, cpu or cuda)")
    return device


def cpu_has_bf16() -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    # torch has no public probe for this; oneDNN's own check is the one its kernels use.
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return probe is not None and bool(probe())
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16"]:
    """'fp32' and 'bf16' are taken as asked; 'auto' is bf16 where the hardware has it."""
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        return "bf16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for a resolved 'bf16' (master weights and the loss stay float32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
