"""Parrot's settings: frozen dataclasses read from a TOML file, with environment overrides.

The file is data, never code (tomllib). Every key has a default, so an empty file (or no
file at all) is a valid configuration. Unknown keys are an error rather than silently
ignored, because a typo in a limit or a cooldown should not pass unnoticed.

Environment overrides (applied after the file), so one config file serves several
deployments and the tests:
  PARROT_DATABASE_URL  -> storage.database_url
  PARROT_DATA_DIR      -> storage.data_dir
  DISCORD_TOKEN        -> the bot token (name configurable with discord.token_env)
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

from bot.core.errors import ConfigError
from bot.core.inputs import LENGTH_MAX, LENGTH_MIN, TEMPERATURE_MAX, TEMPERATURE_MIN
from bot.core.kinds import RunArch

T = TypeVar("T")
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class DiscordConfig:
    token_env: str = "DISCORD_TOKEN"
    token: str = ""  # prefer the environment variable; this is for private deployments only
    shard_count: int = 0  # 0: let Discord recommend (AutoShardedBot)
    sync_commands: bool = True  # push the slash commands to Discord at start-up
    collect_nsfw: bool = False


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = "data"
    database_url: str = ""  # empty: sqlite:///<data_dir>/parrot.db
    max_upload_bytes: int = 2_000_000
    sqlite_busy_timeout_ms: int = 5_000

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_path / 'parrot.db').resolve()}"

    @property
    def checkpoints_path(self) -> Path:
        return self.data_path / "checkpoints"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a server's first model (fine-tunes keep the shape of the model they start from)."""

    arch: RunArch = "gru"
    hidden_size: int = (
        256  # 2x256 beat 2x512 on quality after 10 min on 2 CPU cores, and samples ~3x faster
    )
    num_layers: int = 2
    embed_dim: int = 64
    dropout: float = 0.1
    # The model a server's first model fine-tunes from: "bundled" (bot/data/base.ckpt), ""
    # for from scratch, or a path (`bot.core.checkpoints.base_model`).
    base: str = "bundled"


@dataclass(frozen=True)
class TrainingConfig:
    device: Device = "auto"
    max_minutes: float = 10.0  # wall-clock cap for one run
    fine_tune_minutes: float = 3.0
    max_corpus_chars: int = 20_000_000  # the newest text wins when a corpus is larger
    min_chars_first_model: int = 20_000  # a server's first model is trained once it has this much
    min_new_chars: int = 5_000  # a fine-tune is scheduled once the corpus grew by this much
    keep_checkpoints: int = 3  # per server, the active one always kept
    seed: int = 1337


@dataclass(frozen=True)
class ScheduleConfig:
    enabled: bool = True
    interval_minutes: float = 60.0
    cron: str = ""  # a crontab line; when set it replaces interval_minutes


@dataclass(frozen=True)
class GenerationConfig:
    default_length: int = 300
    max_length: int = 1500
    default_temperature: float = 0.8
    top_k: int = 0
    top_p: float = 0.95
    max_verbatim_chars: int = 40  # longer spans copied from the corpus are resampled or cut
    button_timeout_seconds: float = 600.0
    model_cache_size: int = 8  # loaded models kept in memory (LRU)
    model_cache_mb: int = 1024


@dataclass(frozen=True)
class CooldownConfig:
    generate_per_user_seconds: float = 5.0
    generate_per_server_per_minute: int = 30
    train_per_server_seconds: float = 300.0


@dataclass(frozen=True)
class PrivacyConfig:
    # Ordinary deletions (messages, edits, channel purges) stay blocked from verbatim output by
    # the lineage guard at once; the weights forget them when the model is rebuilt from its
    # root, queued when either of these is passed since the root run.
    rebuild_after_deleted_fraction: float = 0.05
    rebuild_after_days: float = 30.0
    # After start-up (every shard ready), how long to wait before purging stored servers the
    # bot is no longer in (it left or was removed while offline).
    reconcile_grace_seconds: float = 300.0


@dataclass(frozen=True)
class ConsoleConfig:
    corpus: str = ""  # empty: the bundled public-domain text
    checkpoint: str = ""  # empty: the bundled checkpoint


@dataclass(frozen=True)
class ParrotConfig:
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    cooldowns: CooldownConfig = field(default_factory=CooldownConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def token(self, env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        return env.get(self.discord.token_env, "") or self.discord.token


def load_config(
    path: Path | str | None = None, env: Mapping[str, str] | None = None
) -> ParrotConfig:
    """Read `path` (or use defaults when None), then apply the environment overrides."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    config = _build(ParrotConfig, raw, "")
    storage = config.storage
    if url := env.get("PARROT_DATABASE_URL"):
        storage = dataclasses.replace(storage, database_url=url)
    if data_dir := env.get("PARROT_DATA_DIR"):
        storage = dataclasses.replace(storage, data_dir=data_dir)
    # Absolute from here on: model rows store paths under it, and a bot started from another
    # working directory must still find every model.
    absolute = str(Path(storage.data_dir).expanduser().resolve())
    storage = dataclasses.replace(storage, data_dir=absolute)
    return dataclasses.replace(config, storage=storage)


def _build(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{where}] must be a table")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{where or 'top level'}]: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, key)  # type: ignore[arg-type]
        else:
            values[name] = _check_scalar(key, hint, value)
    return cls(**values)


# The range of every numeric setting, inclusive: the one place it is written (README and
# config.example.toml point here). A value outside gets one line naming the key and the
# range; `parrot` then exits with status 2. A number not listed must be finite and >= 0.
RANGES: dict[str, tuple[float, float]] = {
    "discord.shard_count": (0, 100_000),  # 0: as Discord recommends
    "storage.max_upload_bytes": (1, 500_000_000),
    "storage.sqlite_busy_timeout_ms": (0, 600_000),
    "model.hidden_size": (8, 4096),
    "model.num_layers": (1, 8),
    "model.embed_dim": (4, 1024),
    "model.dropout": (0, 0.9),
    "training.max_minutes": (0.01, 10_080),
    "training.fine_tune_minutes": (0.01, 10_080),
    "training.max_corpus_chars": (1_000, 2_000_000_000),
    "training.min_chars_first_model": (0, 2_000_000_000),
    "training.min_new_chars": (0, 2_000_000_000),
    "training.keep_checkpoints": (1, 1_000),
    "training.seed": (0, 2**32 - 1),
    "schedule.interval_minutes": (0.001, 525_600),
    "generation.default_length": (LENGTH_MIN, LENGTH_MAX),
    "generation.max_length": (LENGTH_MIN, LENGTH_MAX),
    "generation.default_temperature": (TEMPERATURE_MIN, TEMPERATURE_MAX),
    "generation.top_k": (0, 100_000),  # 0: off
    "generation.top_p": (0.001, 1),
    "generation.max_verbatim_chars": (0, 10_000),  # 0: the copy guard is off
    "generation.button_timeout_seconds": (1, 86_400),
    "generation.model_cache_size": (1, 10_000),
    "generation.model_cache_mb": (1, 1_000_000),
    "cooldowns.generate_per_user_seconds": (0, 86_400),
    "cooldowns.generate_per_server_per_minute": (1, 1_000_000),
    "cooldowns.train_per_server_seconds": (0, 604_800),
    "privacy.rebuild_after_deleted_fraction": (0.0001, 1),
    "privacy.rebuild_after_days": (0.01, 3_650),
    "privacy.reconcile_grace_seconds": (0, 604_800),
}


def _check_scalar(key: str, hint: Any, value: Any) -> Any:
    allowed = getattr(hint, "__args__", None)
    if getattr(hint, "__origin__", None) is Literal:
        if value not in allowed:  # type: ignore[operator]
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, allowed or ()))}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise ConfigError(f"{key} must be of type {hint.__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = RANGES.get(key, (0, math.inf))
        if not low <= value <= high:
            if high == math.inf:
                raise ConfigError(f"{key} must not be negative, got {value!r}")
            raise ConfigError(f"{key} must be between {low:,} and {high:,}, got {value!r}")
    return value
