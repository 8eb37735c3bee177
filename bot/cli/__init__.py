"""The `parrot` command: one console script, one subcommand per job.

Each module listed in `SUBCOMMAND_MODULES` exposes `register(subparsers)`, which adds its
subcommands and sets `handler=<function(args) -> int>` on each. Those modules import heavy
dependencies (torch, discord) inside their handlers, so `parrot --help` stays fast.

Errors meant for the user (`ParrotError`, `models.errors.ModelError`) print as one line and
exit with status 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bot.core.errors import ParrotError
from models.errors import ModelError

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "models.cli",  # train, eval, generate
    "bot.cli.db",  # db upgrade|downgrade|current
    "bot.cli.run",  # bot, console
    "bot.cli.train",  # train-server
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parrot", description="A Discord bot that learns to write like your server."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ParrotError, ModelError) as error:
        print(f"parrot: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parrot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
