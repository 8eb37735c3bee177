"""`/settings cooldown` and `/settings cooldown-reset`: per-server settings (Manage Server).

Manage Server is checked inside each command (Discord's default permissions are only a
hint that server owners can change). Answers are ephemeral: settings are the admins'
business, not the channel's.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.inputs import COOLDOWN_SECONDS_MAX, COOLDOWN_SECONDS_MIN
from bot.exts.base import ParrotCog, actor_from
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services


def describe_cooldown(seconds: float, *, is_default: bool) -> str:
    wait = "no wait" if seconds == 0 else f"{seconds:g} seconds"
    source = "the bot's default" if is_default else "set for this server"
    return f"Each member waits {wait} between /generate uses ({source})."


class SettingsCog(ParrotCog, name="Settings"):
    settings = app_commands.Group(
        name="settings",
        description="Parrot's settings for this server (Manage Server).",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @settings.command(
        name="cooldown", description="How long each member waits between /generate uses."
    )
    @app_commands.describe(
        seconds=f"Seconds between one member's /generate uses ({COOLDOWN_SECONDS_MIN}-"
        f"{COOLDOWN_SECONDS_MAX}; 0 = no wait). Leave out to see the current value."
    )
    async def cooldown(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[int, COOLDOWN_SECONDS_MIN, COOLDOWN_SECONDS_MAX] | None = None,
    ) -> None:
        actor = actor_from(interaction)
        self.services.settings.check_can_change(actor)
        if seconds is None:
            override = await self.services.generation.cooldown_override(actor.server_id)
            default = self.services.config.cooldowns.generate_per_user_seconds
            text = describe_cooldown(
                default if override is None else override, is_default=override is None
            )
        else:
            await self.services.settings.set_generate_cooldown(actor, seconds)
            text = "Done. " + describe_cooldown(seconds, is_default=False)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @settings.command(
        name="cooldown-reset", description="Go back to the bot's default /generate cooldown."
    )
    async def cooldown_reset(self, interaction: discord.Interaction) -> None:
        actor = actor_from(interaction)
        await self.services.settings.set_generate_cooldown(actor, None)
        default = self.services.config.cooldowns.generate_per_user_seconds
        await interaction.response.send_message(
            "Done. " + describe_cooldown(default, is_default=True),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(SettingsCog(bot, await ensure_services(bot)))
