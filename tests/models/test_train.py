from __future__ import annotations

import math

import pytest
import torch

from models.checkpoint import Checkpoint
from models.config import minimum_corpus_chars
from models.device import resolve_device, resolve_precision
from models.errors import CorpusTooSmallError, InvalidSettingError, TrainingCancelled
from models.train import Progress, evaluate, train
from tests.models.conftest import tiny_config


def test_loss_falls_within_seconds(small_text: str) -> None:
    seen: list[Progress] = []
    result = train(small_text, tiny_config(max_steps=60), on_progress=seen.append)
    history = result.checkpoint.stats.val_loss_history
    assert len(history) >= 2
    uniform = math.log(len(result.checkpoint.vocab))
    assert result.best_val_loss < 0.6 * uniform  # far below guessing
    assert history[-1][2] < history[0][2]
    assert [p.step for p in seen] == list(range(1, 61))
    assert seen[-1].total_steps == 60 and seen[-1].fraction == 1.0
    assert seen[-1].chars_per_sec > 0 and seen[-1].val_loss is not None
    assert not result.cancelled


def test_every_architecture_trains(small_text: str) -> None:
    for arch in ("gru", "lstm", "rnn"):
        result = train(small_text, tiny_config(arch=arch, max_steps=10, eval_interval=10))
        assert result.checkpoint.config.arch == arch
        assert math.isfinite(result.best_val_loss)


def test_same_seed_same_weights(small_text: str) -> None:
    a = train(small_text, tiny_config(max_steps=8, eval_interval=8)).checkpoint
    b = train(small_text, tiny_config(max_steps=8, eval_interval=8)).checkpoint
    for name in a.state_dict:
        torch.testing.assert_close(a.state_dict[name], b.state_dict[name])


def test_cancel_returns_best_so_far(small_text: str) -> None:
    result = train(
        small_text, tiny_config(max_steps=100, eval_interval=5), on_progress=lambda p: p.step < 12
    )
    assert result.cancelled and result.steps == 12
    assert result.checkpoint.stats.steps == 12


def test_cancel_before_first_validation(small_text: str) -> None:
    with pytest.raises(TrainingCancelled):
        train(small_text, tiny_config(max_steps=100, eval_interval=50), on_progress=lambda p: False)


def test_early_stopping_on_a_tiny_corpus() -> None:
    text = "abcdefgh" * 20  # memorised at once: validation stops improving
    result = train(
        text, tiny_config(seq_len=16, max_steps=2000, eval_interval=5, patience=2, lr=0.05)
    )
    assert result.stopped_early and result.steps < 2000


def test_time_budget_stops(small_text: str) -> None:
    result = train(small_text, tiny_config(max_steps=None, max_minutes=0.02))
    assert result.steps >= 1 and not result.cancelled


def test_fine_tune_continues_from_checkpoint_with_grown_vocab(
    small_text: str, tiny_checkpoint: Checkpoint
) -> None:
    before = evaluate(tiny_checkpoint, small_text[-400:]).nats_per_char
    grown_text = small_text + "new chars: 😀 漢字 ✓ 🦜\n" * 20
    result = train(grown_text, tiny_config(max_steps=20, eval_interval=10), init=tiny_checkpoint)
    ckpt = result.checkpoint
    old_chars = tiny_checkpoint.vocab.to_list()
    assert ckpt.vocab.to_list()[: len(old_chars)] == old_chars
    assert "😀" in ckpt.vocab and ckpt.config.vocab_size == len(ckpt.vocab)
    assert ckpt.config.hidden_size == tiny_checkpoint.config.hidden_size  # init's shape wins
    assert ckpt.stats.steps == tiny_checkpoint.stats.steps + result.steps
    assert ckpt.stats.chars_seen > tiny_checkpoint.stats.chars_seen
    assert len(ckpt.stats.val_loss_history) > len(tiny_checkpoint.stats.val_loss_history)
    # It continued rather than restarting: old text is still modelled about as well.
    assert evaluate(ckpt, small_text[-400:]).nats_per_char < before + 0.3


def test_fine_tune_cancelled_at_once_returns_the_start(
    small_text: str, tiny_checkpoint: Checkpoint
) -> None:
    result = train(
        small_text, tiny_config(max_steps=50), init=tiny_checkpoint, on_progress=lambda p: False
    )
    assert result.cancelled


def test_corpus_too_small() -> None:
    config = tiny_config()
    needed = minimum_corpus_chars(config)
    with pytest.raises(CorpusTooSmallError, match=f"at least {needed}"):
        train("x" * (needed - 1), config)
    train("xy" * needed, config.__class__(**{**config.__dict__, "max_steps": 1}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"hidden_size": 0},
        {"lr": -1.0},
        {"max_steps": 0},
        {"max_minutes": -1.0},
        {"max_steps": None},
        {"val_fraction": 0.9},
    ],
)
def test_invalid_settings(small_text: str, overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidSettingError):
        train(small_text, tiny_config(**overrides))


def test_evaluate_reports_nats_and_bits(tiny_checkpoint: Checkpoint, small_text: str) -> None:
    result = evaluate(tiny_checkpoint, small_text[:1000])
    assert result.chars > 900
    assert result.bits_per_char == pytest.approx(result.nats_per_char / math.log(2))
    unseen = evaluate(tiny_checkpoint, "😀漢字" * 50)
    assert math.isfinite(unseen.nats_per_char)
    with pytest.raises(CorpusTooSmallError):
        evaluate(tiny_checkpoint, "a")


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InvalidSettingError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidSettingError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
