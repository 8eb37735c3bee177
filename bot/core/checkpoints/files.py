"""Checkpoint files on disk: their names, the files that go with them (sidecars), setting a
bad one aside, and removing orphans. No database here; the registry decides which files
live.

Layout: `<data_dir>/checkpoints/<server_id>/<run_id>-<arch>.ckpt`, each with an optional
verbatim index beside it (`<checkpoint>.verbatim`, see `bot.core.generation.verbatim`).
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.core.generation.verbatim import INDEX_SUFFIX, index_path_for
from bot.core.logs import get_logger

log = get_logger(__name__)

CHECKPOINT_SUFFIX = ".ckpt"
CORRUPT_SUFFIX = ".corrupt"
CHECKPOINT_NAME = re.compile(r"^(?P<run_id>\d+)-(?P<arch>[a-z]+)\.ckpt$")


def checkpoint_filename(run_id: int, arch: str) -> str:
    return f"{run_id}-{arch}{CHECKPOINT_SUFFIX}"


def sidecar_paths(checkpoint: Path) -> list[Path]:
    """Files that belong to a checkpoint and go when it goes."""
    return [checkpoint, index_path_for(checkpoint)]


def remove_orphans(directory: Path, kept: set[str], live_runs: set[int]) -> list[Path]:
    """Delete files in a server's directory that belong to no kept checkpoint, except those
    of runs still queued or running (a worker may be writing them)."""
    if not directory.is_dir():
        return []
    removed: list[Path] = []
    for path in directory.iterdir():
        owner = owning_checkpoint(path.name)
        if owner is None or owner in kept:
            continue
        match = CHECKPOINT_NAME.match(owner)
        if match and int(match["run_id"]) in live_runs:
            continue
        if unlink_quietly(path):
            removed.append(path)
    return removed


def is_set_aside(checkpoint_path: str) -> bool:
    return checkpoint_path.endswith(CORRUPT_SUFFIX)


def owning_checkpoint(name: str) -> str | None:
    """The checkpoint file name a file in a server directory belongs to (None: not ours).

    `7-gru.ckpt`, `7-gru.ckpt.verbatim`, `7-gru.ckpt.corrupt` and a leftover temp file
    `.7-gru.ckpt.<random>.tmp` all belong to `7-gru.ckpt`.
    """
    stripped = name.lstrip(".")
    for suffix in (INDEX_SUFFIX, CORRUPT_SUFFIX):
        stripped = stripped.removesuffix(suffix)
    if stripped.endswith(".tmp"):
        stripped = stripped[: stripped.find(CHECKPOINT_SUFFIX) + len(CHECKPOINT_SUFFIX)]
    return stripped if CHECKPOINT_NAME.match(stripped) else None


def checkpoint_of(checkpoint_path: str) -> Path:
    """The checkpoint file a row refers to, also when the row points at its `.corrupt` copy."""
    return Path(checkpoint_path.removesuffix(CORRUPT_SUFFIX))


def move_aside(path: Path) -> None:
    for part in sidecar_paths(path):
        try:
            if part == path:
                part.replace(part.with_name(part.name + CORRUPT_SUFFIX))
            else:
                part.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            log.error("could not move aside %s: %s", part, error)


def unlink_quietly(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.error("could not delete %s: %s", path, error)
        return False
    return True
