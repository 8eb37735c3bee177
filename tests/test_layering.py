"""Dependencies flow one way: Discord glue -> services -> storage/training/sampling -> models.

Importing any module of `bot.core` or `models` must not import discord.py, and `models` must
not import the bot or the database layer. Checked in a fresh interpreter per package so
modules imported by other tests cannot hide a violation.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    path = ROOT.joinpath(*package.split("."))
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules([str(path)])]


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


@pytest.mark.parametrize("package", ["bot.core", "models"])
def test_core_packages_never_import_discord(package: str) -> None:
    assert "discord" not in _imported_after(_modules(package))


def test_models_is_pure_pytorch() -> None:
    imported = _imported_after(_modules("models"))
    assert not imported & {"bot", "sqlalchemy", "alembic", "apscheduler", "discord"}
