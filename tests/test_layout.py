"""The shape rules of `bot/` and `models/`, checked on the source: small modules and classes,
small folders, and no module touching another's private attributes."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "models")
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250
MAX_FOLDER_MODULES = 12


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_no_module_is_too_long() -> None:
    long = {
        _name(path): lines
        for path in _sources()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_class_is_too_long() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    long[f"{_name(path)}:{node.name}"] = lines
    assert long == {}


def test_no_folder_holds_too_many_modules() -> None:
    folders = {path.parent for path in _sources()}
    crowded = {
        _name(folder): count
        for folder in folders
        if (count := len([p for p in folder.glob("*.py") if p.name != "__init__.py"]))
        > MAX_FOLDER_MODULES
    }
    assert crowded == {}


# Documented public APIs of the standard library whose names start with an underscore.
STDLIB_UNDERSCORE_API = frozenset({"os._exit"})


def _private_reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """`obj._name` where `obj` is not `self`/`cls` (dunders such as `__dict__` are fine)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or (attr.startswith("__") and attr.endswith("__")):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if ast.unparse(node) in STDLIB_UNDERSCORE_API:
            continue
        found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_module_reaches_into_private_attributes() -> None:
    reaches = [
        f"{_name(path)}:{line}: {text}"
        for path in _sources()
        for line, text in _private_reaches(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert reaches == []


def test_the_private_attribute_check_sees_a_reach() -> None:
    tree = ast.parse("def f(sampler):\n    return sampler._rows, self._ok, obj.__dict__\n")
    assert [text for _, text in _private_reaches(tree)] == ["sampler._rows"]


def test_every_bot_logger_redacts_database_errors() -> None:
    """A plain `logging.getLogger` would let a failed statement quote message text."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if "logging.getLogger(__name__)" in path.read_text(encoding="utf-8")
    ]
    assert offenders == [], "use bot.core.logs.get_logger"
