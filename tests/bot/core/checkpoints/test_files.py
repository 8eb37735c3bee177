"""Checkpoint file names: which files in a server directory belong to which checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.checkpoints.files import (
    checkpoint_filename,
    checkpoint_of,
    is_set_aside,
    owning_checkpoint,
    sidecar_paths,
)


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("7-gru.ckpt", "7-gru.ckpt"),
        ("7-gru.ckpt.verbatim", "7-gru.ckpt"),
        ("7-gru.ckpt.corrupt", "7-gru.ckpt"),
        (".7-gru.ckpt.abc123.tmp", "7-gru.ckpt"),
        ("notes.txt", None),
        ("7-gru.pt", None),
    ],
)
def test_every_sidecar_and_leftover_names_its_checkpoint(name: str, owner: str | None) -> None:
    assert owning_checkpoint(name) == owner


def test_names_and_set_aside_copies_round_trip(tmp_path: Path) -> None:
    name = checkpoint_filename(12, "lstm")
    assert name == "12-lstm.ckpt" and owning_checkpoint(name) == name
    path = tmp_path / name
    assert sidecar_paths(path)[0] == path and len(sidecar_paths(path)) == 2
    assert is_set_aside(f"{path}.corrupt") and not is_set_aside(str(path))
    assert checkpoint_of(f"{path}.corrupt") == path
