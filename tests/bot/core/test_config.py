from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.core.config import RANGES, ParrotConfig, load_config
from bot.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "config.example.toml"


def test_example_config_documents_every_setting() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section in dataclasses.fields(ParrotConfig):
        section_type = type(getattr(ParrotConfig(), section.name))
        expected = {f.name for f in dataclasses.fields(section_type)}
        assert set(raw.get(section.name, {})) == expected, section.name


def test_example_config_equals_the_defaults() -> None:
    defaults = ParrotConfig()
    # Loading makes the data directory absolute; everything else is the defaults.
    absolute = dataclasses.replace(defaults.storage, data_dir=str(Path("data").resolve()))
    assert load_config(EXAMPLE, env={}) == dataclasses.replace(defaults, storage=absolute)


def test_no_file_means_defaults_and_env_overrides_apply(tmp_path: Path) -> None:
    config = load_config(
        None, env={"PARROT_DATA_DIR": str(tmp_path), "PARROT_DATABASE_URL": "sqlite://"}
    )
    assert config.storage.data_dir == str(tmp_path)
    assert config.storage.resolved_database_url == "sqlite://"


def test_default_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(None, env={"PARROT_DATA_DIR": str(tmp_path)})
    assert config.storage.resolved_database_url == f"sqlite:///{tmp_path / 'parrot.db'}"


def test_token_comes_from_the_environment_first() -> None:
    config = load_config(None, env={})
    assert config.token({"DISCORD_TOKEN": "abc"}) == "abc"
    assert config.token({}) == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage]\nmax_upload_bytes = 'big'\n", "storage.max_upload_bytes must be of type int"),
        ("[model]\narch = 'transformer'\n", "model.arch must be one of"),
        ("[modle]\n", "unknown setting(s) in [top level]: modle"),
        ("[training]\nmax_minutes = -1\n", "training.max_minutes must be between 0.01 and 10,080"),
        ("[cooldowns]\ngenerate_per_user_seconds = nan\n", "must be a finite number"),
        ("[training]\nmax_minutes = inf\n", "must be a finite number"),
        ("[generation]\nmax_length = 0\n", "generation.max_length must be between 1 and 1,500"),
        ("[model]\ndropout = 1.5\n", "model.dropout must be between 0 and 0.9"),
        ("not toml at all [", "is not valid TOML"),
    ],
)
def test_bad_config_gives_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, env={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_a_relative_data_dir_is_made_absolute_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={"PARROT_DATA_DIR": "data"})
    monkeypatch.chdir("/")
    assert config.storage.data_path == tmp_path.resolve() / "data"
    assert config.storage.checkpoints_path.is_absolute()


def _numeric_settings() -> list[tuple[str, str, float]]:
    """(section, name, default) of every int or float setting."""
    found = []
    for section in dataclasses.fields(ParrotConfig):
        defaults = getattr(ParrotConfig(), section.name)
        for field in dataclasses.fields(defaults):
            value = getattr(defaults, field.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.append((section.name, field.name, value))
    return found


def test_every_number_has_a_range_that_holds_its_default() -> None:
    for section, name, default in _numeric_settings():
        key = f"{section}.{name}"
        assert key in RANGES, f"{key} has no documented range"
        low, high = RANGES[key]
        assert low <= default <= high, key


@pytest.mark.parametrize("key", sorted(RANGES))
def test_each_number_refuses_nan_inf_and_what_is_out_of_range(tmp_path: Path, key: str) -> None:
    """Issue #14: nan, inf, -1 and (where it is invalid) 0, for every numeric key."""
    section, name = key.split(".")
    low, _ = RANGES[key]
    default = next(d for s, n, d in _numeric_settings() if (s, n) == (section, name))
    bad = ["nan", "inf", "-1"] if isinstance(default, float) else ["-1"]
    if low > 0:
        bad.append("0")
    for value in bad:
        path = tmp_path / "config.toml"
        path.write_text(f"[{section}]\n{name} = {value}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config(path, env={})


def test_a_bad_value_exits_with_status_2_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[generation]\nmax_length = 0\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "--config", str(path), "current"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "generation.max_length must be between 1 and 1,500" in lines[0]
