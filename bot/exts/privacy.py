"""`/privacy optout|optin|export|forget`: every user controls what Parrot keeps of them.

All answers are ephemeral. In a server the scope is "here" or "everywhere"; in a direct
message with the bot it is always everywhere.
"""

from __future__ import annotations

import io
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.exts.base import ParrotCog
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services

Scope = Literal["this server", "everywhere"]


def scope_server(interaction: discord.Interaction, scope: Scope) -> int | None:
    """The server id the command applies to; None means every server."""
    if scope == "everywhere" or interaction.guild_id is None:
        return None
    return interaction.guild_id


def where(server_id: int | None) -> str:
    return "in any server" if server_id is None else "in this server"


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
            f"Deleted {counts.messages:,} messages and {counts.documents:,} uploads.",
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
        data = await self.services.privacy.export_user(interaction.user.id)
        await interaction.edit_original_response(
            content="Here is everything Parrot stores about you.",
            attachments=[
                discord.File(io.BytesIO(data), filename=f"parrot-export-{interaction.user.id}.json")
            ],
            allowed_mentions=NO_MENTIONS,
        )

    @privacy.command(name="forget", description="Delete your collected messages and uploads.")
    @app_commands.describe(scope="Here only, or in every server Parrot is in.")
    async def forget(self, interaction: discord.Interaction, scope: Scope = "this server") -> None:
        server_id = scope_server(interaction, scope)
        await interaction.response.defer(thinking=True, ephemeral=True)
        counts = await self.services.privacy.forget_user(interaction.user.id, server_id)
        await interaction.edit_original_response(
            content=f"Deleted {counts.messages:,} messages and {counts.documents:,} uploads "
            f"{where(server_id)}. New messages are still collected unless you /privacy optout.",
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(PrivacyCog(bot, await ensure_services(bot)))
