"""`/model`: the active model's facts and a picture of its loss curve."""

from __future__ import annotations

import asyncio
import io

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.checkpoints.registry import ModelRecord
from bot.exts.base import ParrotCog, actor_from
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services
from bot.render import loss_curve_png

LOSS_CURVE_FILENAME = "loss.png"


def model_facts(model: ModelRecord) -> list[tuple[str, str]]:
    bits = f"{model.val_bits_per_char:.3f}" if model.val_bits_per_char is not None else "?"
    return [
        ("Architecture", model.arch.upper()),
        ("Parameters", f"{model.param_count:,}"),
        ("Trained", discord.utils.format_dt(model.created_at, "R")),
        ("Characters trained on", f"{model.chars_trained:,}"),
        ("Validation bits/char", bits),
    ]


class ModelInfoCog(ParrotCog, name="Model"):
    @app_commands.command(name="model", description="About this server's model.")
    @app_commands.guild_only()
    async def model(self, interaction: discord.Interaction) -> None:
        actor = actor_from(interaction)
        await interaction.response.defer(thinking=True)
        info = await self.services.models.info(actor.server_id)
        embed = discord.Embed(title="Parrot's model", colour=discord.Colour.blurple())
        for name, value in model_facts(info.model):
            embed.add_field(name=name, value=value, inline=True)
        png = await asyncio.to_thread(loss_curve_png, info.loss_history)
        files: list[discord.File] = []
        if png is not None:
            files.append(discord.File(io.BytesIO(png), filename=LOSS_CURVE_FILENAME))
            embed.set_image(url=f"attachment://{LOSS_CURVE_FILENAME}")
        await interaction.edit_original_response(
            embed=embed, attachments=files, allowed_mentions=NO_MENTIONS
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ModelInfoCog(bot, await ensure_services(bot)))
