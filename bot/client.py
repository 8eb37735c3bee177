"""ParrotBot: the standalone bot. Thin on purpose: the work is in the cogs and the services.

`setup_hook` migrates the database and starts the services (training worker, scheduler),
loads the extensions and, when configured, syncs the slash commands; `close()` stops the
gateway first, then the services (collected messages flushed, worker ended, DB closed).
"""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.core.app import build
from bot.core.config import ParrotConfig
from bot.core.logs import get_logger
from bot.core.services import ParrotServices
from bot.errors import ParrotCommandTree
from bot.mentions import NO_MENTIONS
from bot.plugin import EXTENSIONS

log = get_logger(__name__)


def parrot_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it in the Developer Portal
    intents.members = False
    intents.presences = False
    return intents


class ParrotBot(commands.AutoShardedBot):
    def __init__(
        self, config: ParrotConfig, *, services: ParrotServices | None = None, **options: object
    ) -> None:
        shard_count = config.discord.shard_count or None  # None: ask Discord (AutoShardedBot)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=parrot_intents(),
            tree_cls=ParrotCommandTree,
            allowed_mentions=NO_MENTIONS,
            shard_count=shard_count,
            help_command=None,
            **options,  # type: ignore[arg-type]
        )
        self.config = config
        # Given (tests, embedding) or built in setup_hook; either way this bot closes it.
        self.parrot_services: ParrotServices | None = services

    @property
    def services(self) -> ParrotServices:
        if self.parrot_services is None:
            raise RuntimeError("ParrotBot.services is only available after setup_hook")
        return self.parrot_services

    async def setup_hook(self) -> None:
        if self.parrot_services is None:
            self.parrot_services = build(self.config)
        await self.parrot_services.start()
        for name in EXTENSIONS:
            await self.load_extension(name)
        if self.config.discord.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))

    async def on_message(self, message: discord.Message, /) -> None:
        # Parrot has slash commands only: without this, every mention of the bot would be
        # parsed as a prefix command and logged as "command not found".
        return

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.parrot_services is not None:
                await self.parrot_services.close()
