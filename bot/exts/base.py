"""Discord-side helpers shared by the cogs: who is asking, safe sends, error routing."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import NotAllowed
from bot.core.services.actor import Actor
from bot.errors import ParrotCommandTree, reply_with_error
from bot.render import fit_message

if TYPE_CHECKING:
    from bot.core.services import ParrotServices

T = TypeVar("T")


def actor_from(interaction: discord.Interaction) -> Actor:
    """The person behind an interaction, with Manage Server read from the payload.

    `interaction.permissions` are the member's resolved permissions in the channel, sent by
    Discord with every interaction, so the check never depends on the member cache.
    """
    if interaction.guild_id is None:
        raise NotAllowed("This command only works in a server.")
    permissions = interaction.permissions
    return Actor(
        server_id=interaction.guild_id,
        user_id=interaction.user.id,
        can_manage=permissions.manage_guild or permissions.administrator,
    )


def text_file(text: str, filename: str) -> discord.File:
    return discord.File(io.BytesIO(text.encode("utf-8")), filename=filename)


def fitted_send_kwargs(
    text: str, *, plain: str | None = None, filename: str = "parrot.txt"
) -> dict[str, Any]:
    """`content` (<= 2,000 characters) plus, when `text` is longer, a .txt attachment.

    `plain` is what the attachment holds (e.g. the text without Discord markdown); `text`
    itself by default.
    """
    fitted = fit_message(text)
    attachments = []
    if fitted.attachment is not None:
        attachments.append(text_file(fitted.attachment if plain is None else plain, filename))
    return {"content": fitted.content, "attachments": attachments}


class TaskTracker:
    """Long-running work started by interactions (streaming, following a run).

    Closing the bot unloads the cogs before it closes its HTTP session; cancelling this
    work there means nothing tries to edit a message through a closed session.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Run `work` as a tracked task; None if it was cancelled by `cancel_all`."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled():
                return None
            raise

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `work` as a tracked task without waiting for it (from a sync callback)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ParrotCog(commands.Cog):
    """Base of Parrot's cogs: keeps the services and routes errors in plugin mode.

    Under `ParrotBot` the tree's `on_error` answers every failure. Loaded into another bot
    (plugin mode) that tree is not ours, so the cog answers its own commands' errors here
    (the host tree's handler then runs too; it usually only logs).
    """

    def __init__(self, bot: commands.Bot, services: ParrotServices) -> None:
        self.bot = bot
        self.services = services
        self.tasks = TaskTracker()

    async def cog_unload(self) -> None:
        await self.tasks.cancel_all()

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if not isinstance(getattr(interaction.client, "tree", None), ParrotCommandTree):
            await reply_with_error(interaction, error)
