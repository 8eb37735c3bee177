"""Dependencies flow one way: Discord glue -> services -> storage/training/checkpoints/
generation -> models.

Importing any module of `bot.core` or `models` must not import discord.py, and `models` must
not import the bot or the database layer. Checked in a fresh interpreter per package so
modules imported by other tests cannot hide a violation. The direction inside `bot` is read
from the source (every `import`), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Packages of `bot.core` and what each may never import (the layers above it).
FORBIDDEN_BELOW: dict[str, tuple[str, ...]] = {
    "bot.core.storage": (
        "bot.core.training",
        "bot.core.checkpoints",
        "bot.core.generation",
        "bot.core.services",
        "bot.core.app",
    ),
    "bot.core.training": ("bot.core.services", "bot.core.app"),
    "bot.core.checkpoints": ("bot.core.training", "bot.core.services", "bot.core.app"),
    "bot.core.generation": ("bot.core.training", "bot.core.services", "bot.core.app"),
    "bot.core.services": ("bot.core.app",),
}


def _modules(package: str) -> list[str]:
    path = ROOT.joinpath(*package.split("."))
    return [package] + [
        info.name for info in pkgutil.walk_packages([str(path)], prefix=f"{package}.")
    ]


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


def _source_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package", ["bot.core", "models"])
def test_core_packages_never_import_discord(package: str) -> None:
    assert "discord" not in _imported_after(_modules(package))


def test_models_is_pure_pytorch() -> None:
    imported = _imported_after(_modules("models"))
    assert not imported & {"bot", "sqlalchemy", "alembic", "apscheduler", "discord"}


def test_models_source_never_imports_the_bot() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "models").rglob("*.py"))
        for name in _source_imports(path)
        if _within(name, "bot")
    ]
    assert offenders == []


def test_the_core_never_imports_the_front_ends() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "bot" / "core").rglob("*.py"))
        for name in _source_imports(path)
        if _within(name, "bot") and not _within(name, "bot.core")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN_BELOW))
def test_lower_layers_never_import_upper_ones(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(folder.rglob("*.py"))
        for name in _source_imports(path)
        if any(_within(name, upper) for upper in FORBIDDEN_BELOW[package])
    ]
    assert offenders == []


# What only the composition root (`bot.core.app.build`) may construct.
PARTS = {"make_engine", "make_session_factory", "ModelRegistry", "TrainingManager", "Sampler"}


def _constructed(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "from_config":
            func = func.value  # ModelRegistry.from_config(...) builds one too
        if isinstance(func, ast.Name) and func.id in PARTS | {"ParrotServices"}:
            names.add(func.id)
        elif isinstance(func, ast.Attribute) and func.attr in PARTS | {"ParrotServices"}:
            names.add(func.attr)
    return names


def test_front_ends_build_their_services_only_through_the_composition_root() -> None:
    front_ends = [
        path
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if not path.is_relative_to(ROOT / "bot" / "core")
    ]
    offenders = {
        str(path.relative_to(ROOT)): names for path in front_ends if (names := _constructed(path))
    }
    assert offenders == {}
    assert _constructed(ROOT / "bot" / "core" / "app.py") >= {"ModelRegistry", "TrainingManager"}
