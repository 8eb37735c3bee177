"""The `/generate` command."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.core.inputs import (
    LENGTH_MAX,
    LENGTH_MIN,
    PROMPT_MAX_CHARS,
    SEED_MAX,
    SEED_MIN,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
)
from bot.exts.base import ParrotCog, actor_from
from bot.exts.generate._views import Generated, GenerationView, stream_into_response


class GenerateCog(ParrotCog, name="Generate"):
    @app_commands.command(name="generate", description="Continue a text in this server's style.")
    @app_commands.guild_only()
    @app_commands.describe(
        start="The text to continue (1-500 characters).",
        length=f"How many characters to add ({LENGTH_MIN}-{LENGTH_MAX}).",
        temperature="Lower is safer, higher is wilder (0.1-2.0).",
        seed="Repeat a sample exactly by giving the same seed.",
    )
    async def generate(
        self,
        interaction: discord.Interaction,
        start: app_commands.Range[str, 1, PROMPT_MAX_CHARS],
        length: app_commands.Range[int, LENGTH_MIN, LENGTH_MAX] | None = None,
        temperature: app_commands.Range[float, TEMPERATURE_MIN, TEMPERATURE_MAX] | None = None,
        seed: app_commands.Range[int, SEED_MIN, SEED_MAX] | None = None,
    ) -> None:
        actor = actor_from(interaction)
        options = self.services.generation.options(start, length, temperature, seed)
        await self.services.generation.take_cooldown(actor)
        await interaction.response.defer(thinking=True)
        shown = Generated(actor, options)
        view = GenerationView(
            self.services,
            self.tasks,
            shown,
            timeout=self.services.config.generation.button_timeout_seconds,
        )
        view.last_interaction = interaction
        final = await self.tasks.run(
            stream_into_response(interaction, self.services, shown, options, view=view)
        )
        view.shown = final or shown
