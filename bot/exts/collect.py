"""Message collection and replies: the gateway events that feed and clean the corpus.

- New messages in opted-in channels are buffered and stored in batches; bots, webhooks,
  system messages, opted-out users (filtered by the store) and age-restricted channels
  (unless `discord.collect_nsfw`) are skipped.
- Edits and deletions use the raw events, so messages that are not in discord.py's cache
  (sent before a restart, or evicted) are still updated or removed.
- Leaving a server deletes everything Parrot kept about it, checkpoints included.
- In channels with replies turned on, mentioning the bot or replying to it (or, rarely, any
  message, with the channel's reply chance) gets a continuation of the message.
"""

from __future__ import annotations

import random
import re

import discord
from discord.ext import commands

from bot.core.errors import ParrotError
from bot.core.inputs import PROMPT_MAX_CHARS
from bot.core.logs import get_logger
from bot.core.services import ParrotServices
from bot.core.services.actor import Actor
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services
from bot.render import fit_message, neutralize_mentions

log = get_logger(__name__)


def is_age_restricted(channel: object) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


class CollectCog(commands.Cog, name="Collect"):
    def __init__(
        self, bot: commands.Bot, services: ParrotServices, rng: random.Random | None = None
    ) -> None:
        self.bot = bot
        self.services = services
        self.rng = rng or random.Random()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.author.bot or message.webhook_id is not None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if is_age_restricted(message.channel) and not self.services.config.discord.collect_nsfw:
            return
        # A thread follows the settings of the channel it belongs to.
        home = message.channel.parent_id if isinstance(message.channel, discord.Thread) else None
        settings_channel_id = home or message.channel.id
        settings = await self.services.collection.channel_settings(
            message.guild.id, settings_channel_id
        )
        if settings.collect and message.content:
            await self.services.collection.collect_message(
                message.guild.id,
                message_id=message.id,
                channel_id=message.channel.id,
                author_id=message.author.id,
                content=message.content,
                created_at=message.created_at,
                settings_channel_id=settings_channel_id,
            )
        if settings.replies and self._wants_reply(message, settings.reply_chance):
            await self._reply(message)

    def _wants_reply(self, message: discord.Message, chance: float) -> bool:
        me = self.bot.user
        if me is None:
            return False
        if any(user.id == me.id for user in message.mentions):
            return True
        reference = message.reference
        resolved = reference.resolved if reference is not None else None
        if isinstance(resolved, discord.Message) and resolved.author.id == me.id:
            return True
        return chance > 0 and self.rng.random() < chance

    async def _reply(self, message: discord.Message) -> None:
        assert message.guild is not None and self.bot.user is not None
        # The prompt is the message without the mention of the bot itself.
        prompt = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip()
        # The end of a long message is what a reply continues; with the newline the prompt
        # must still fit the prompt limit, or the reply would be refused.
        prompt = prompt[-(PROMPT_MAX_CHARS - 1) :] + "\n"
        actor = Actor(message.guild.id, message.author.id)
        try:
            options = self.services.generation.options(prompt)
            await self.services.generation.take_cooldown(actor)
            async with message.channel.typing():
                text = await self.services.generation.generate(actor.server_id, options)
        except ParrotError as error:
            log.debug("no reply in %s: %s", message.channel.id, error)
            return
        if not text.strip():
            return
        fitted = fit_message(neutralize_mentions(text.strip()))
        await message.reply(fitted.content, allowed_mentions=NO_MENTIONS, mention_author=False)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        content = payload.data.get("content")
        if payload.guild_id is None or content is None:
            return  # embeds resolving also send updates, without content
        await self.services.collection.edit_message(payload.message_id, content)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.services.collection.delete_messages([payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.services.collection.delete_messages(sorted(payload.message_ids))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        log.info("left server %s: deleting its data", guild.id)
        await self.services.privacy.remove_server(guild.id)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(CollectCog(bot, await ensure_services(bot)))
