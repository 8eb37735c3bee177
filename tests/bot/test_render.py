"""Text and picture helpers shared by Discord and the console."""

from __future__ import annotations

from bot.core.training.progress import RunProgress
from bot.render import (
    DISCORD_MESSAGE_LIMIT,
    fit_message,
    generation_text,
    loss_curve_png,
    neutralize_mentions,
    progress_line,
)


def test_mentions_are_neutralized_whatever_their_shape() -> None:
    text = neutralize_mentions("@everyone @here <@123> <@!45> <@&6789012345678901234>")
    assert "@everyone" not in text and "@here" not in text
    assert "<@1" not in text and "<@!" not in text and "<@&" not in text


def test_long_text_becomes_an_attachment() -> None:
    short = fit_message("a" * DISCORD_MESSAGE_LIMIT)
    assert short.attachment is None
    long = fit_message("b" * 2500)
    assert len(long.content) <= DISCORD_MESSAGE_LIMIT
    assert long.attachment == "b" * 2500


def test_generation_text_bolds_the_prompt_and_escapes() -> None:
    text = generation_text("Once *upon* ", "a time @everyone")
    assert text.startswith("**Once \\*upon\\***")
    assert "@\u200beveryone" in text


def test_progress_line_and_png() -> None:
    progress = RunProgress(
        step=50,
        total_steps=200,
        train_loss=1.2345,
        val_loss=None,
        best_val_loss=None,
        chars_per_sec=0.0,
        eta_seconds=75,
        elapsed_seconds=0.0,
    )
    line = progress_line(progress)
    assert "25%" in line and "50/200" in line and "1.234" in line and "1m15s" in line
    png = loss_curve_png([[0, 4.0, None], [10, 3.0, 3.1], [20, 2.5, 2.7]])
    assert png is not None and png.startswith(b"\x89PNG")
    assert loss_curve_png([]) is None
