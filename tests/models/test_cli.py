"""`parrot train | eval | generate` end to end, in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests.helpers.corpora import SMALL_TEXT

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--hidden",
    "24",
    "--layers",
    "1",
    "--embed",
    "8",
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--threads",
    "1",
    "--quiet",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(SMALL_TEXT + "émoji 😀 漢字\n", encoding="utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_train_eval_generate_in_process(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "m.ckpt"
    assert (
        main(
            [
                "train",
                str(corpus),
                "--arch",
                "lstm",
                "--steps",
                "15",
                "--out",
                str(out),
                "--seed",
                "3",
                *TINY,
            ]
        )
        == 0
    )
    assert "saved" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.config.arch == "lstm" and ckpt.config.hidden_size == 24

    assert main(["eval", str(out), str(corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"nats_per_char", "bits_per_char", "chars"}
    assert report["chars"] > 1000 and report["nats_per_char"] > 0

    assert main(["eval", str(out), str(corpus)]) == 0
    assert "bits/char" in capsys.readouterr().out

    args = [
        "generate",
        str(out),
        "--start",
        "the 😀",
        "--length",
        "40",
        "--seed",
        "9",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("the 😀") and len(first) == len("the 😀") + 40 + 1
    assert main(args) == 0
    assert capsys.readouterr().out == first  # seeded

    # Fine-tune on a grown corpus from the checkpoint.
    grown = tmp_path / "grown.txt"
    grown.write_text(
        corpus.read_text(encoding="utf-8") + "nouveaux caractères ✓\n" * 30, encoding="utf-8"
    )
    tuned = tmp_path / "tuned.ckpt"
    assert (
        main(["train", str(grown), "--init", str(out), "--steps", "5", "--out", str(tuned), *TINY])
        == 0
    )
    assert "✓" in load_checkpoint(tuned).vocab


def test_subprocess_end_to_end_and_bf16_weights(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "m.ckpt"
    result = _run(
        "train",
        str(corpus),
        "--steps",
        "5",
        "--out",
        str(out),
        "--weights-dtype",
        "bf16",
        *TINY[:-1],
    )
    assert result.returncode == 0, result.stderr
    assert "step 5/5" in result.stderr  # the progress bar
    result = _run("generate", str(out), "--start", "to be", "--length", "20", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("to be")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{missing}", "--out", "{out}", "--steps", "1"], "not found"),
        (["train", "{empty}", "--out", "{out}", "--steps", "1"], "empty"),
        (["train", "{latin1}", "--out", "{out}", "--steps", "1"], "UTF-8"),
        (["train", "{tiny}", "--out", "{out}", "--steps", "1"], "at least"),
        (["train", "{corpus}", "--out", "{out}", "--minutes", "-1"], "--minutes"),
        (["train", "{corpus}", "--out", "{out}", "--steps", "0"], "--steps"),
        (["train", "{corpus}", "--out", "{out}", "--arch", "transformer"], "--arch"),
        (
            ["train", "{corpus}", "--out", "{out}", "--init", "{corpus}", "--steps", "1"],
            "not a Parrot checkpoint",
        ),
        (["eval", "{missing}", "{corpus}"], "not found"),
        (["eval", "{corpus}", "{corpus}"], "not a Parrot checkpoint"),
        (["generate", "{corpus}"], "not a Parrot checkpoint"),
        (["generate", "{ckpt}", "--temperature", "-0.5"], "--temperature"),
        (["generate", "{ckpt}", "--top-p", "1.5"], "--top-p"),
        (["generate", "{ckpt}", "--length", "0"], "--length"),
        (["generate", "{ckpt}", "--top-k", "many"], "--top-k"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    corpus: Path,
    tiny_checkpoint: Checkpoint,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    files = {
        "missing": tmp_path / "missing.txt",
        "out": tmp_path / "out.ckpt",
        "empty": tmp_path / "empty.txt",
        "latin1": tmp_path / "latin1.txt",
        "tiny": tmp_path / "tiny.txt",
        "corpus": corpus,
        "ckpt": tmp_path / "good.ckpt",
    }
    files["empty"].write_text("  \n", encoding="utf-8")
    files["latin1"].write_bytes("café crème".encode("latin-1") * 100)
    files["tiny"].write_text("hello", encoding="utf-8")
    save_checkpoint(tiny_checkpoint, files["ckpt"])
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse rejects out-of-range values itself
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith(("parrot: error:", "usage:"))
    assert "Traceback" not in err
    assert not files["out"].exists()  # nothing half-written


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path, corpus: Path) -> None:
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("hello", encoding="utf-8")
    for args in (
        ["train", str(tiny), "--out", str(tmp_path / "o.ckpt"), "--steps", "1"],
        ["generate", str(corpus)],
        ["generate", str(corpus), "--top-p", "7"],
    ):
        result = _run(*args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "error" in result.stderr.strip().splitlines()[-1]


def test_in_process_errors_return_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            ["train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o.ckpt"), "--steps", "1"]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", str(tmp_path / "x.ckpt"), "--length", "-3"])
    assert exit_info.value.code == 2
