from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from bot.core.config import ParrotConfig, load_config
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
        ("[training]\nmax_minutes = -1\n", "must not be negative"),
        ("[cooldowns]\ngenerate_per_user_seconds = nan\n", "must be a finite number"),
        ("[training]\nmax_minutes = inf\n", "must be a finite number"),
        ("[generation]\nmax_length = 0\n", "generation.max_length must be greater than 0"),
        ("[model]\ndropout = 1.5\n", "model.dropout must be between 0 and 1"),
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
