"""The command tree's one error handler: every failure becomes an ephemeral message.

Precedence (first match wins), written down so nobody has to guess:
 1. `CommandInvokeError` is unwrapped to the exception the command raised.
 2. `ParrotError` (domain errors: OnCooldown, NotAllowed, ModelNotReady, InvalidInput,
    TrainingBusy, CorpusTooSmall, DuplicateUpload...) -> its own text, written for users.
 3. `models.errors.ModelError` -> its own text (bad setting, unreadable checkpoint).
 4. Discord's check failures: `CommandOnCooldown` (time to wait), `MissingPermissions`
    (names the permission), `NoPrivateMessage`, any other `CheckFailure`.
 5. `TransformerError` (an option Discord could not convert) -> "invalid value".
 6. Anything else is a bug: logged with its traceback, the user gets a generic apology.

`reply_with_error` is also used by the Views (buttons), whose errors never reach the tree,
and by the cogs when they are loaded into someone else's bot (plugin mode), whose tree is
not this one.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.core.errors import ParrotError
from bot.core.logs import get_logger
from bot.mentions import NO_MENTIONS
from models.errors import ModelError

log = get_logger(__name__)

GENERIC_FAILURE = "Something went wrong on my side; it has been logged. Please try again later."
HANDLED_KEY = "parrot_error_handled"


def error_message(error: BaseException) -> tuple[str, bool]:
    """Return (text for the user, whether this is unexpected and must be logged)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, ParrotError | ModelError):
        return str(error), False
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {max(1, round(error.retry_after))}s.", False
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission to do that.", False
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server.", False
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here.", False
    if isinstance(error, app_commands.TransformerError):
        return f"That is not a valid value for this option: {error.value!r}.", False
    return GENERIC_FAILURE, True


async def reply_with_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer `interaction` with the error's message, ephemeral when Discord allows it."""
    if interaction.extras.get(HANDLED_KEY):
        return
    interaction.extras[HANDLED_KEY] = True
    text, unexpected = error_message(error)
    if unexpected:
        command = interaction.command.qualified_name if interaction.command else "?"
        original = getattr(error, "original", error)
        log.error(
            "unexpected error in %s (guild %s, user %s)",
            command,
            interaction.guild_id,
            interaction.user.id,
            exc_info=(type(original), original, original.__traceback__),
        )
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
        elif interaction.response.type in (
            discord.InteractionResponseType.deferred_channel_message,
            discord.InteractionResponseType.channel_message,
        ):
            # The response exists (e.g. "thinking..."): replace it with the error.
            await interaction.edit_original_response(
                content=text, attachments=[], view=None, embed=None, allowed_mentions=NO_MENTIONS
            )
        else:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("could not report an error to the user (interaction %s)", interaction.id)


class ParrotCommandTree(app_commands.CommandTree):
    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        await reply_with_error(interaction, error)
