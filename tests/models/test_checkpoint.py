from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

from models.checkpoint import FORMAT_VERSION, Checkpoint, load_checkpoint, save_checkpoint
from models.errors import CheckpointError, CheckpointUnavailable
from tests.helpers.faults import no_file_descriptors_left


def test_round_trip_keeps_everything(tmp_path: Path, tiny_checkpoint: Checkpoint) -> None:
    path = tmp_path / "sub" / "model.ckpt"
    save_checkpoint(tiny_checkpoint, path)
    loaded = load_checkpoint(path)
    assert loaded.config == tiny_checkpoint.config
    assert loaded.vocab == tiny_checkpoint.vocab
    assert loaded.stats == tiny_checkpoint.stats
    assert loaded.stats.chars_seen > 0 and loaded.stats.val_loss_history
    for name, tensor in tiny_checkpoint.state_dict.items():
        torch.testing.assert_close(loaded.state_dict[name], tensor)
    assert [p.name for p in path.parent.iterdir()] == ["model.ckpt"]  # no temp file left behind
    model = loaded.build_model()
    assert not model.training and model.param_count == loaded.param_count


def test_bf16_weights_load_as_float32(tmp_path: Path, tiny_checkpoint: Checkpoint) -> None:
    path = tmp_path / "half.ckpt"
    save_checkpoint(tiny_checkpoint, path, dtype=torch.bfloat16)
    model = load_checkpoint(path).build_model()
    weight = model.head.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(
        weight, tiny_checkpoint.state_dict["head.weight"], atol=2e-2, rtol=2e-2
    )


def test_overwrite_is_atomic_replacement(tmp_path: Path, tiny_checkpoint: Checkpoint) -> None:
    path = tmp_path / "m.ckpt"
    path.write_bytes(b"old")
    save_checkpoint(tiny_checkpoint, path)
    assert load_checkpoint(path).config == tiny_checkpoint.config


def test_a_missing_or_unreadable_file_is_unavailable_not_corrupt(
    tmp_path: Path, tiny_checkpoint: Checkpoint
) -> None:
    """Only bad contents are a CheckpointError (the bot sets those files aside); a file that
    cannot be read now is CheckpointUnavailable and is retried (issue #14)."""
    with pytest.raises(CheckpointUnavailable, match="not found"):
        load_checkpoint(tmp_path / "nope.ckpt")
    path = tmp_path / "locked.ckpt"
    save_checkpoint(tiny_checkpoint, path)
    # EMFILE: a real fault root meets too, unlike chmod 000.
    with no_file_descriptors_left(), pytest.raises(CheckpointUnavailable, match="cannot read"):
        load_checkpoint(path)
    if os.geteuid() != 0:  # root reads any file whatever its mode
        path.chmod(0)
        try:
            with pytest.raises(CheckpointUnavailable, match="cannot read"):
                load_checkpoint(path)
        finally:
            path.chmod(0o644)
    assert load_checkpoint(path).config == tiny_checkpoint.config


@pytest.mark.parametrize("keep", [0, 10, 100, 1000, -200])
def test_truncated_file(tmp_path: Path, tiny_checkpoint: Checkpoint, keep: int) -> None:
    path = tmp_path / "m.ckpt"
    save_checkpoint(tiny_checkpoint, path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_corrupt_bytes_inside(tmp_path: Path, tiny_checkpoint: Checkpoint) -> None:
    path = tmp_path / "m.ckpt"
    save_checkpoint(tiny_checkpoint, path)
    data = bytearray(path.read_bytes())
    for i in range(200, len(data) - 200, 97):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_foreign_files(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello", encoding="utf-8")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("a.txt", "hi")
    other_torch = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other_torch)
    plain_tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), plain_tensor)
    for path in (text_file, other_zip, other_torch, plain_tensor, tmp_path):
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "parrot-charrnn", "format_version": FORMAT_VERSION, "x": _Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_inconsistent_contents(tmp_path: Path, tiny_checkpoint: Checkpoint) -> None:
    path = tmp_path / "m.ckpt"
    wrong_shape = dict(tiny_checkpoint.state_dict)
    wrong_shape["head.bias"] = torch.zeros(3)
    save_checkpoint(
        Checkpoint(
            tiny_checkpoint.config, tiny_checkpoint.vocab, wrong_shape, tiny_checkpoint.stats
        ),
        path,
    )
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)
    missing = {k: v for k, v in tiny_checkpoint.state_dict.items() if k != "head.bias"}
    save_checkpoint(
        Checkpoint(tiny_checkpoint.config, tiny_checkpoint.vocab, missing, tiny_checkpoint.stats),
        path,
    )
    with pytest.raises(CheckpointError, match="missing or extra"):
        load_checkpoint(path)
    torch.save({"format": "parrot-charrnn", "format_version": 999}, path)
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(path)
