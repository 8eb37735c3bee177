#!/usr/bin/env bash
# Create .venv and install Parrot with its development tools. Idempotent; safe to re-run.
#
# PyTorch: a bare `torch` requirement resolves to a multi-GB CUDA build. On a machine with no
# NVIDIA GPU we install the CPU build first, so the range in pyproject.toml (torch>=2.4) is
# already satisfied. PARROT_TORCH_SPEC overrides what is installed; where the CPU wheel is not
# on local disk, point pip at PyTorch's CPU index (PIP_EXTRA_INDEX_URL=<pytorch cpu index>).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        "${pip[@]}" install "${PARROT_TORCH_SPEC:-torch>=2.4}"
    else
        "${pip[@]}" install "${PARROT_TORCH_SPEC:-torch==2.13.0+cpu}"
    fi
fi
"${pip[@]}" install -e ".[dev]"
