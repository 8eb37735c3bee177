"""`parrot db upgrade|downgrade|current`: run the database migrations by hand.

The database URL comes from the config file (`--config`, else $PARROT_CONFIG), with the
PARROT_DATABASE_URL / PARROT_DATA_DIR overrides, or from `--database-url`.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from bot.core.config import load_config

if TYPE_CHECKING:
    from models.cli import Subcommands


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "db", help="database migrations", description="Create or migrate Parrot's database."
    )
    parser.add_argument("--config", help="config file (default: $PARROT_CONFIG, else defaults)")
    parser.add_argument("--database-url", help="use this database instead of the config's")
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")

    upgrade = actions.add_parser("upgrade", help="migrate to the newest schema (or REVISION)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_upgrade)

    downgrade = actions.add_parser("downgrade", help="migrate down to REVISION ('base': empty)")
    downgrade.add_argument("revision")
    downgrade.set_defaults(handler=_downgrade)

    current = actions.add_parser("current", help="print the database's revision")
    current.set_defaults(handler=_current)


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    config_path = args.config or os.environ.get("PARROT_CONFIG") or None
    return load_config(config_path).storage.resolved_database_url


def _upgrade(args: argparse.Namespace) -> int:
    from alembic import command

    from bot.core.storage.db import alembic_config, current_revision

    url = _database_url(args)
    command.upgrade(alembic_config(url), args.revision)
    print(f"database at revision {current_revision(url) or 'base'}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from bot.core.storage.db import current_revision, downgrade

    url = _database_url(args)
    downgrade(url, args.revision)
    print(f"database at revision {current_revision(url) or 'base'}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from bot.core.storage.db import current_revision, head_revision

    revision = current_revision(_database_url(args))
    head = head_revision()
    state = "up to date" if revision == head else f"newest is {head}"
    print(f"{revision or 'base (empty)'} ({state})")
    return 0
