"""Plugin mode: Parrot's cogs inside any discord.py 2.x bot.

    await bot.load_extension("bot.plugin")          # all of Parrot
    await bot.load_extension("bot.exts.generate")   # or one feature at a time

Where the cogs get their services from, in order:
 1. `bot.parrot_services`, if the host bot (or `ParrotBot`) already attached a
    `ParrotServices` there; the host then owns its lifecycle.
 2. Otherwise one is created from the TOML file named by the `PARROT_CONFIG` environment
    variable (defaults when unset; `PARROT_DATA_DIR`/`PARROT_DATABASE_URL` still apply),
    migrated, started and attached. Unloading `bot.plugin` (which `Bot.close()` does)
    stops it.

The host bot needs the message-content intent for collection, and should create its
`CommandTree` with `tree_cls=bot.errors.ParrotCommandTree` for the friendliest error messages
(without it, each Parrot cog answers its own commands' errors).
"""

from __future__ import annotations

import os
from typing import Any

from discord.ext import commands

from bot.core.app import build
from bot.core.config import load_config
from bot.core.services import ParrotServices

SERVICES_ATTR = "parrot_services"
OWNED_ATTR = "_parrot_services_owned"
CONFIG_ENV = "PARROT_CONFIG"

EXTENSIONS: tuple[str, ...] = (
    "bot.exts.generate",
    "bot.exts.train",
    "bot.exts.corpus",
    "bot.exts.model_info",
    "bot.exts.privacy",
    "bot.exts.collect",
    "bot.exts.settings",
)


def attached_services(bot: Any) -> ParrotServices | None:
    services = getattr(bot, SERVICES_ATTR, None)
    return services if isinstance(services, ParrotServices) else None


async def ensure_services(bot: commands.Bot) -> ParrotServices:
    """The bot's ParrotServices, created from PARROT_CONFIG and started when absent."""
    services = attached_services(bot)
    if services is not None:
        return services
    config = load_config(os.environ.get(CONFIG_ENV) or None)
    services = build(config)
    await services.start()
    setattr(bot, SERVICES_ATTR, services)
    setattr(bot, OWNED_ATTR, True)
    return services


async def setup(bot: commands.Bot) -> None:
    await ensure_services(bot)
    for name in EXTENSIONS:
        if name not in bot.extensions:
            await bot.load_extension(name)


async def teardown(bot: commands.Bot) -> None:
    for name in EXTENSIONS:
        if name in bot.extensions:
            await bot.unload_extension(name)
    if getattr(bot, OWNED_ATTR, False):
        services = attached_services(bot)
        setattr(bot, SERVICES_ATTR, None)
        setattr(bot, OWNED_ATTR, False)
        if services is not None:
            await services.close()
