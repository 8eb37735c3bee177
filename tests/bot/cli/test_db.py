"""`parrot db upgrade|downgrade|current` on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.core.storage.db import current_revision, head_revision


def test_upgrade_current_downgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'parrot.db'}"
    assert main(["db", "--database-url", url, "current"]) == 0
    assert "base (empty)" in capsys.readouterr().out

    assert main(["db", "--database-url", url, "upgrade"]) == 0
    assert current_revision(url) == head_revision()
    assert main(["db", "--database-url", url, "current"]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["db", "--database-url", url, "downgrade", "base"]) == 0
    assert current_revision(url) is None


def test_the_url_comes_from_the_config_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "parrot.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "from-file"}"\n', encoding="utf-8")
    monkeypatch.delenv("PARROT_DATABASE_URL", raising=False)
    monkeypatch.delenv("PARROT_DATA_DIR", raising=False)
    assert main(["db", "--config", str(config), "upgrade"]) == 0
    assert (tmp_path / "from-file" / "parrot.db").exists()

    monkeypatch.setenv("PARROT_CONFIG", str(config))
    monkeypatch.setenv("PARROT_DATA_DIR", str(tmp_path / "from-env"))
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "from-env" / "parrot.db").exists()


def test_a_missing_config_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "--config", str(tmp_path / "nope.toml"), "current"]) == 2
    assert "config file not found" in capsys.readouterr().err
