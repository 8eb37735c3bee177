"""`/corpus status|channel-add|channel-remove|replies|upload|clear`: what Parrot learns from."""

from __future__ import annotations

from pathlib import PurePath

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidInput
from bot.core.services.actor import Actor
from bot.core.services.corpus import CorpusStatus
from bot.exts.base import ParrotCog, actor_from
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services
from bot.render import describe_purge, list_within, neutralize_mentions
from bot.views import Confirm

CONFIRM_TIMEOUT_SECONDS = 60.0
TEXT_CONTENT_TYPES = ("text/plain",)


# Each channel list gets at most this much of the 2,000-character message (120 channels
# of 21-character mentions would not fit); the rest of the status needs well under 500.
CHANNEL_LIST_CHARS = 700


def describe_status(status: CorpusStatus) -> str:
    channels = list_within(
        [f"<#{c}>" for c in status.collecting_channels], CHANNEL_LIST_CHARS, empty="none yet"
    )
    lines = [
        f"**Corpus:** {status.messages:,} messages, {status.documents:,} documents, "
        f"{status.chars:,} characters from {status.authors:,} authors.",
        f"**Collecting from:** {channels}" + ("" if status.collecting else " (paused)"),
    ]
    if status.reply_channels:
        replies = list_within([f"<#{c}>" for c in status.reply_channels], CHANNEL_LIST_CHARS)
        lines.append("**Replies in:** " + replies)
    if status.model is None:
        need = max(0, status.min_chars_first_model - status.chars)
        lines.append(
            "**Model:** none yet"
            + (f" ({need:,} more characters until the first one)." if need else ".")
        )
    else:
        lines.append(
            f"**Model:** {status.model.arch.upper()}, trained on "
            f"{status.model.chars_trained:,} characters; "
            f"{status.chars_since_last_training:,} new characters since the last run."
        )
    return "\n".join(lines)


class CorpusCog(ParrotCog, name="Corpus"):
    corpus = app_commands.Group(
        name="corpus", description="What Parrot learns from in this server.", guild_only=True
    )

    @corpus.command(name="status", description="Size of the corpus and where it comes from.")
    async def status(self, interaction: discord.Interaction) -> None:
        actor = actor_from(interaction)
        # Counting a large corpus can take a moment: acknowledge first.
        await interaction.response.defer(thinking=True, ephemeral=True)
        status = await self.services.corpus.status(actor.server_id)
        await interaction.edit_original_response(
            content=describe_status(status), allowed_mentions=NO_MENTIONS
        )

    @corpus.command(name="channel-add", description="Learn from a channel (Manage Server).")
    @app_commands.describe(channel="The channel whose new messages Parrot collects.")
    async def channel_add(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        actor = actor_from(interaction)
        await self.services.settings.set_channel_collect(actor, channel.id, True)
        note = ""
        if channel.nsfw and not self.services.config.discord.collect_nsfw:
            note = " It is age-restricted, so nothing will be collected unless the bot's owner enables NSFW collection."
        await interaction.response.send_message(
            f"Collecting new messages from {channel.mention}.{note}", allowed_mentions=NO_MENTIONS
        )

    @corpus.command(name="channel-remove", description="Stop learning from a channel.")
    @app_commands.describe(channel="The channel to stop collecting (what it gave is kept).")
    async def channel_remove(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        actor = actor_from(interaction)
        await self.services.settings.set_channel_collect(actor, channel.id, False)
        await interaction.response.send_message(
            f"No longer collecting from {channel.mention}.", allowed_mentions=NO_MENTIONS
        )

    @corpus.command(name="replies", description="Let Parrot answer mentions in a channel.")
    @app_commands.describe(
        channel="The channel.",
        enabled="Answer when mentioned or replied to.",
        chance="Also reply to this fraction of ordinary messages (0 to 0.2).",
    )
    async def replies(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        enabled: bool,
        chance: app_commands.Range[float, 0.0, 0.2] = 0.0,
    ) -> None:
        actor = actor_from(interaction)
        await self.services.settings.set_channel_replies(actor, channel.id, enabled, chance)
        state = "will answer mentions" if enabled else "will not answer"
        extra = f" and reply to {chance:.0%} of messages" if enabled and chance else ""
        await interaction.response.send_message(
            f"Parrot {state} in {channel.mention}{extra}.", allowed_mentions=NO_MENTIONS
        )

    @corpus.command(name="upload", description="Add a .txt file to the corpus (Manage Server).")
    @app_commands.describe(file="A UTF-8 .txt file.")
    async def upload(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        actor = actor_from(interaction)
        self.services.corpus.check_can_upload(actor)
        limit = self.services.config.storage.max_upload_bytes
        suffix = PurePath(file.filename).suffix.lower()
        content_type = (file.content_type or "").split(";")[0].strip()
        if suffix != ".txt" or (content_type and content_type not in TEXT_CONTENT_TYPES):
            raise InvalidInput("Only plain-text .txt files can be added to the corpus.")
        if file.size > limit:
            raise InvalidInput(f"That file is {file.size:,} bytes; the limit is {limit:,} bytes.")
        await interaction.response.defer(thinking=True, ephemeral=True)
        data = await file.read()
        size = await self.services.corpus.upload(actor, file.filename, data)
        await interaction.edit_original_response(
            content=f"Added {neutralize_mentions(discord.utils.escape_markdown(file.filename))} "
            f"({size:,} bytes) to the corpus.",
            allowed_mentions=NO_MENTIONS,
        )

    @corpus.command(name="clear", description="Delete the whole corpus (Manage Server).")
    async def clear(self, interaction: discord.Interaction) -> None:
        actor = actor_from(interaction)
        self.services.corpus.check_can_clear(actor)
        await interaction.response.send_message(
            "Delete every collected message and uploaded file of this server, "
            "and every model trained on them?",
            view=self._clear_confirmation(actor),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    def _clear_confirmation(self, actor: Actor) -> Confirm:
        async def clear() -> str:
            counts = await self.services.corpus.clear(actor)
            return describe_purge(counts, documents="documents")

        return Confirm(
            actor.user_id,
            clear,
            confirm_label="Delete everything",
            cancel_label="Keep it",
            cancelled_text="Nothing was deleted.",
            timeout=CONFIRM_TIMEOUT_SECONDS,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(CorpusCog(bot, await ensure_services(bot)))
