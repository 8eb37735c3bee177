"""Message collection and replies: the gateway events that feed and clean the corpus.

- New messages in opted-in channels are buffered and stored in batches; bots, webhooks,
  system messages, opted-out users (filtered by the store) and age-restricted channels
  (unless `discord.collect_nsfw`) are skipped.
- Edits and deletions use the raw events, so messages that are not in discord.py's cache
  (sent before a restart, or evicted) are still updated or removed.
- Leaving a server deletes everything Parrot kept about it, checkpoints included.
- A deleted channel or thread takes its collected messages with it (Discord sends no
  per-message deletes for it).
- Once every shard is ready (a fresh start or a new session, not a RESUME), and after
  `privacy.reconcile_grace_seconds`, what happened while the bot was offline is caught up
  with: servers it is no longer in are removed, and deleted channels purged
  (`bot.core.services.reconcile`).
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
from bot.core.services.reconcile import Reconciler
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
        self.reconciler = Reconciler(
            services.sessions,
            collection=services.collection,
            privacy=services.privacy,
            grace_seconds=services.config.privacy.reconcile_grace_seconds,
        )

    async def cog_unload(self) -> None:
        # Before the services close: a purge still running must not outlive the database.
        await self.reconciler.close()

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

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # discord.py fires this once every shard has its READY and guilds, and never for a
        # RESUME (which replays what was missed): only then can the guild list be trusted.
        if self.reconciler.schedule(DiscordGatewayView(self.bot)):
            log.info(
                "checking for servers and channels gone while offline in %.0f s",
                self.services.config.privacy.reconcile_grace_seconds,
            )

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        # Its cached threads follow as raw thread deletes (discord.py sends those itself).
        await self.reconciler.delete_channels(channel.guild.id, [channel.id])

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        # The raw event: threads discord.py never cached (archived ones) are deleted too.
        await self.reconciler.delete_channels(payload.guild_id, [payload.thread_id])


class DiscordGatewayView:
    """`reconcile.GatewayView` on discord.py's cache, read live."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    def serves(self, server_id: int) -> bool:
        if isinstance(self.bot, discord.AutoShardedClient):
            shard_ids = set(self.bot.shards)
        else:
            shard_ids = {self.bot.shard_id or 0}
        # Discord's rule for which shard a guild is on.
        return (server_id >> 22) % (self.bot.shard_count or 1) in shard_ids

    def is_member(self, server_id: int) -> bool:
        # Unavailable guilds (an outage) are still in the cache: the bot is still a member.
        return self.bot.get_guild(server_id) is not None

    def has_channel(self, server_id: int, channel_id: int) -> bool | None:
        guild = self.bot.get_guild(server_id)
        if guild is None or guild.unavailable:
            return None
        # GUILD_CREATE carries every channel of the guild, so one missing was deleted. Settings
        # rows name text channels only (the commands take those), never archived threads,
        # which would be missing from the cache while they still exist.
        return guild.get_channel_or_thread(channel_id) is not None


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(CollectCog(bot, await ensure_services(bot)))
