"""`/privacy optout|optin|export|forget`: every user controls what Parrot keeps of them.

All answers are ephemeral. In a server the scope is "here" or "everywhere"; in a direct
message with the bot it is always everywhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.exts.base import ParrotCog
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services
from bot.render import describe_purge

Scope = Literal["this server", "everywhere"]
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's, for a server without boosts or a DM


def scope_server(interaction: discord.Interaction, scope: Scope) -> int | None:
    """The server id the command applies to; None means every server."""
    if scope == "everywhere" or interaction.guild_id is None:
        return None
    return interaction.guild_id


def where(server_id: int | None) -> str:
    return "in any server" if server_id is None else "in this server"


def upload_limit(interaction: discord.Interaction) -> int:
    """The largest file the bot may attach in its answer.

    Discord sends it with every interaction (`attachment_size_limit`, which discord.py
    reads as `Interaction.filesize_limit`; it covers DMs and the server's boosts). Without
    it: the server's boost-tier limit, or Discord's default in a DM.
    """
    limit = getattr(interaction, "filesize_limit", 0)
    if isinstance(limit, int) and limit > 0:
        return limit
    return interaction.guild.filesize_limit if interaction.guild else DEFAULT_UPLOAD_LIMIT


async def open_attachment(path: Path) -> discord.File:
    # Opening is file I/O, so it runs in a thread; discord.py owns and closes the file (it
    # opened it) once sent, and aiohttp reads it in a thread too.
    return await asyncio.to_thread(discord.File, str(path), filename=path.name)


class PrivacyCog(ParrotCog, name="Privacy"):
    privacy = app_commands.Group(name="privacy", description="What Parrot keeps about you.")

    @privacy.command(name="optout", description="Stop collecting your messages and delete them.")
    @app_commands.describe(scope="Here only, or in every server Parrot is in.")
    async def optout(self, interaction: discord.Interaction, scope: Scope = "this server") -> None:
        server_id = scope_server(interaction, scope)
        await interaction.response.defer(thinking=True, ephemeral=True)  # deleting takes a moment
        counts = await self.services.privacy.opt_out(interaction.user.id, server_id)
        await interaction.edit_original_response(
            content=f"Done: Parrot will not collect your messages {where(server_id)}. "
            + describe_purge(counts),
            allowed_mentions=NO_MENTIONS,
        )

    @privacy.command(name="optin", description="Allow collecting your messages again.")
    @app_commands.describe(scope="Undo an opt-out made here, or the one made everywhere.")
    async def optin(self, interaction: discord.Interaction, scope: Scope = "this server") -> None:
        server_id = scope_server(interaction, scope)
        changed = await self.services.privacy.opt_in(interaction.user.id, server_id)
        text = (
            f"Parrot may collect your messages {where(server_id)} again."
            if changed
            else f"You had not opted out {where(server_id)}; nothing changed."
        )
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @privacy.command(name="export", description="Download everything Parrot stores about you.")
    async def export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        files = await self.services.privacy.export_user(
            interaction.user.id, part_limit=upload_limit(interaction)
        )
        try:
            count = len(files.paths)
            intro = "Here is everything Parrot stores about you (gzip-compressed JSON)."
            if count > 1:
                intro += f" It is in {count} files, each a complete part; the others follow."
            await interaction.edit_original_response(
                content=intro,
                attachments=[await open_attachment(files.paths[0])],
                allowed_mentions=NO_MENTIONS,
            )
            # One file per message: each request then stays within the upload limit.
            for number, path in enumerate(files.paths[1:], start=2):
                await interaction.followup.send(
                    f"Part {number} of {count}.",
                    file=await open_attachment(path),
                    ephemeral=True,
                    allowed_mentions=NO_MENTIONS,
                )
        finally:
            await asyncio.to_thread(files.delete)  # the user's data must not stay on disk

    @privacy.command(name="forget", description="Delete your collected messages and uploads.")
    @app_commands.describe(scope="Here only, or in every server Parrot is in.")
    async def forget(self, interaction: discord.Interaction, scope: Scope = "this server") -> None:
        server_id = scope_server(interaction, scope)
        await interaction.response.defer(thinking=True, ephemeral=True)
        counts = await self.services.privacy.forget_user(interaction.user.id, server_id)
        await interaction.edit_original_response(
            content=f"{describe_purge(counts)} (Scope: {where(server_id)}.) "
            "New messages are still collected unless you /privacy optout.",
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(PrivacyCog(bot, await ensure_services(bot)))
