"""`/generate`: sample a continuation, streamed into the response, with Regenerate/Continue.

The command validates its options and takes the cooldown before acknowledging (so a refusal
is an ephemeral message), then defers at once: sampling never has to fit in Discord's
3-second window. The text is shown as it is sampled, editing the response at most about
once per second, and the finished message carries two buttons for the requesting user.
"""

from __future__ import annotations

from discord.ext import commands

from bot.exts.generate._cog import GenerateCog
from bot.plugin import ensure_services


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GenerateCog(bot, await ensure_services(bot)))
