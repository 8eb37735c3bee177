"""`parrot bot` (the standalone Discord bot) and `parrot console` (no Discord at all).

    parrot bot --config config.toml        # token from $DISCORD_TOKEN (or the config)
    parrot console [--config config.toml]  # the pretend server in the terminal

Both load the config, set up logging, migrate the database to head and run until stopped.
SIGINT and SIGTERM close the bot cleanly: gateway closed, scheduler stopped, training worker
ended, collected messages flushed, database closed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.config import ParrotConfig, load_config
from bot.core.errors import ConfigError
from bot.core.logs import get_logger, install_redaction

if TYPE_CHECKING:
    from models.cli import Subcommands


def register(subparsers: Subcommands) -> None:
    bot = subparsers.add_parser(
        "bot", help="run the Discord bot", description="Run Parrot as a standalone Discord bot."
    )
    bot.add_argument("--config", type=Path, default=None, help="TOML settings file")
    bot.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    bot.set_defaults(handler=run_bot_command)

    console = subparsers.add_parser(
        "console",
        help="talk to Parrot in the terminal (no Discord token needed)",
        description="Console mode: Parrot's slash commands for a local pretend server.",
    )
    console.add_argument("--config", type=Path, default=None, help="TOML settings file")
    console.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    console.set_defaults(handler=run_console_command)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        install_redaction(handler)


def run_bot_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    token = config.token()
    if not token:
        raise ConfigError(
            f"no Discord token: set the {config.discord.token_env} environment variable "
            "(or discord.token in the config file)"
        )
    _setup_logging(args.log_level)
    return asyncio.run(run_bot(config, token))


async def run_bot(config: ParrotConfig, token: str) -> int:
    from bot.client import ParrotBot

    bot = ParrotBot(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def request_stop() -> None:
        stopping.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, request_stop)
    try:
        async with bot:
            runner = asyncio.create_task(bot.start(token))
            stopper = asyncio.create_task(stopping.wait())
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                get_logger(__name__).info("stopping on signal")
            await bot.close()
            stopper.cancel()
            if runner in done:
                _raise_clearly(runner)
            else:
                await asyncio.gather(runner, return_exceptions=True)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0


def run_console_command(args: argparse.Namespace) -> int:
    from bot.console import run_console

    config = load_config(args.config)
    _setup_logging(args.log_level)
    return asyncio.run(run_console(config))


def _raise_clearly(runner: asyncio.Task[None]) -> None:
    """Turn Discord's start-up refusals into one-line errors; anything else keeps its trace."""
    import discord

    try:
        runner.result()
    except discord.LoginFailure:
        raise ConfigError("Discord rejected the token: check DISCORD_TOKEN") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "the Message Content intent is not enabled for this bot: turn it on in the "
            "Discord Developer Portal (Bot > Privileged Gateway Intents)"
        ) from None
