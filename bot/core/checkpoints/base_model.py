"""The base model: a general pretrained checkpoint every server's first model (and every
rebuild) fine-tunes from, so a small server writes well from its first day.

`[model] base` in the config: "bundled" (the default) is `bot/data/base.ckpt` when the
package ships one, "" trains from scratch as before, and a path is a self-hoster's own base
(`parrot train` makes one). The base read no server's corpus, so it needs no verbatim index,
and a model fine-tuned from it records the root "base" in its lineage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError

BUNDLED = "bundled"
BUNDLED_PATH = Path(__file__).resolve().parents[2] / "data" / "base.ckpt"
ROOT_BASE = "base"  # `trained_models.root` of a model whose lineage starts at the base


def base_checkpoint_path(setting: str) -> Path | None:
    """Where the configured base model is; None: train from scratch.

    ConfigError for a self-hoster's path that does not exist (a typo must not silently
    mean "from scratch"); a package without a bundled base simply has none."""
    if not setting:
        return None
    if setting == BUNDLED:
        return BUNDLED_PATH if BUNDLED_PATH.is_file() else None
    path = Path(setting).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"model.base: no checkpoint at {path}")
    return path


@dataclass(frozen=True)
class BaseModelRecord:
    """The base model as the sampler sees a server's model (`sampler.ActiveModelLike`): what
    a server without a model of its own is answered from."""

    path: Path
    id: str = ROOT_BASE
    requires_guard: bool = False  # it never read a server's corpus
