"""Console mode driven through its stdin, in a subprocess, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import ConsoleCommand, parse_line
from bot.core.errors import InvalidInput
from tests.helpers.corpora import SMALL_TEXT

ROOT = Path(__file__).resolve().parents[2]


def test_parse_line() -> None:
    assert parse_line('/generate start:"Once upon" length:200') == ConsoleCommand(
        ("generate",), {"start": "Once upon", "length": "200"}
    )
    assert parse_line("/train cancel") == ConsoleCommand(("train", "cancel"), {})
    assert parse_line("   ") is None
    with pytest.raises(InvalidInput):
        parse_line("hello")
    with pytest.raises(InvalidInput):
        parse_line('/generate start:"unclosed')
    with pytest.raises(InvalidInput):
        parse_line("/generate start:a start:b")


def write_config(tmp_path: Path, checkpoint: Path | None) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SMALL_TEXT * 3, encoding="utf-8")
    config = tmp_path / "config.toml"
    lines = [
        "[storage]",
        f'data_dir = "{tmp_path / "data"}"',
        "[model]",
        "hidden_size = 32",
        "embed_dim = 16",
        "num_layers = 1",
        "[training]",
        'device = "cpu"',
        "max_minutes = 0.05",
        "fine_tune_minutes = 0.05",
        "[console]",
        f'corpus = "{corpus}"',
        f'checkpoint = "{checkpoint or tmp_path / "missing.ckpt"}"',
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def run_console(config: Path, stdin: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PARROT_DATA_DIR", None)
    env.pop("PARROT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_console_session_through_stdin(tmp_path: Path, tiny_checkpoint_path: Path) -> None:
    config = write_config(tmp_path, tiny_checkpoint_path)
    script = "\n".join(
        [
            "/help",
            '/generate start:"to be or" length:80 seed:7',
            "/generate start:x length:99999",
            "/model",
            "/corpus status",
            "/privacy export",
            "/nonsense",
            "/train mode:fine-tune",
            "/quit",
            '/generate start:"never reached"',
        ]
    )
    result = run_console(config, script + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/generate start:" in out  # the help
    assert "to be or" in out
    assert "error: length must be between 1 and 1500." in out
    assert "Architecture:          GRU" in out
    assert "Corpus: 0 messages, 1 documents" in out
    assert "Exported your data" in out
    assert "error: Unknown command /nonsense" in out
    assert "finished" in out, out
    assert "never reached" not in out
    assert (tmp_path / "data" / "console-loss.png").is_file()


@pytest.mark.slow
def test_console_without_a_model_trains_one_and_eof_exits(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    result = run_console(config, '/generate start:"to be" length:20\n')  # then EOF
    transcript = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, transcript
    assert "No model yet: training one" in result.stdout, transcript
    assert "finished" in result.stdout, transcript
    assert "to be" in result.stdout.split("finished", 1)[1], transcript
