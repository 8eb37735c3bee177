"""`/train start` and `/train cancel`: admin-started runs with a live progress bar.

Manage Server is checked inside the command (the services raise NotAllowed): Discord's
default permissions are only a hint that server owners can change. The response is edited
with the run's progress at most about once per second; an interaction token lives 15
minutes, so a run that outlives it reports its result as a plain channel message.

A run nobody follows through an interaction (queued before the bot restarted, or its
follower cancelled) still reports: the cog listens to every run's events and posts the
final result to the run's notify channel unless a live follower has that run. Scheduled
runs have no notify channel and post nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.kinds import RunStatus, TrainArch, TrainMode
from bot.core.logs import get_logger
from bot.core.services import ParrotServices
from bot.core.training.queue import RunEvent
from bot.exts.base import ParrotCog, actor_from
from bot.mentions import NO_MENTIONS
from bot.plugin import ensure_services
from bot.render import describe_finished_run, progress_line

log = get_logger(__name__)

EDIT_INTERVAL_SECONDS = 1.0
INTERACTION_TOKEN_LIFETIME = timedelta(minutes=15)
# Stop editing through the token a little before it expires: an edit in flight at the
# deadline would fail and the result would be lost.
TOKEN_SAFETY_MARGIN = timedelta(seconds=30)


def describe_update(event: RunEvent) -> str:
    """The text of `/train`'s response: queued, running (with a progress bar), or the end."""
    if event.status == RunStatus.QUEUED:
        place = f" (number {event.queue_position} in line)" if event.queue_position else ""
        return f"Training run #{event.run_id} is queued{place}."
    if event.status == RunStatus.RUNNING:
        arch = (
            event.progress.arch
            if event.progress is not None and event.progress.arch
            else event.arch
        )
        mode = event.mode.value if event.mode is not None else ""
        return f"Training run #{event.run_id} ({mode}, {arch})\n" + progress_line(event.progress)
    return describe_finished_run(event)


class TrainCog(ParrotCog, name="Train"):
    # An instance attribute in practice (tests shorten it); Discord's rule is 15 minutes.
    token_lifetime: timedelta = INTERACTION_TOKEN_LIFETIME

    def __init__(self, bot: commands.Bot, services: ParrotServices) -> None:
        super().__init__(bot, services)
        # Runs a live `_follow` reports on; the listener leaves their results to it.
        self._followed: set[int] = set()
        self._remove_listener: Callable[[], None] | None = None

    async def cog_load(self) -> None:
        self._remove_listener = self.services.training.add_listener(self._on_training_update)

    async def cog_unload(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        await super().cog_unload()

    train = app_commands.Group(
        name="train",
        description="Train this server's model.",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @train.command(name="start", description="Start a training run now (Manage Server).")
    @app_commands.describe(
        mode="fine-tune the current model, or train a new one from scratch",
        arch="network type for a from-scratch run (auto trains both and keeps the better)",
    )
    async def start(
        self,
        interaction: discord.Interaction,
        mode: TrainMode = "fine-tune",
        arch: TrainArch | None = None,
    ) -> None:
        actor = actor_from(interaction)
        self.services.training.check_can_start(actor)
        await interaction.response.defer(thinking=True)
        run_id = await self.services.training.start(
            actor, mode=mode, arch=arch, notify_channel_id=interaction.channel_id
        )
        # Claimed before the next await, so the listener can never see this run's final
        # event unclaimed and post it a second time.
        self._followed.add(run_id)
        try:
            await self.tasks.run(self._follow(interaction, run_id))
        finally:
            self._followed.discard(run_id)

    @train.command(name="cancel", description="Stop this server's queued or running run.")
    async def cancel(self, interaction: discord.Interaction) -> None:
        actor = actor_from(interaction)
        await self.services.training.cancel(actor)
        await interaction.response.send_message(
            "Cancelling this server's training run.", allowed_mentions=NO_MENTIONS
        )

    async def _follow(self, interaction: discord.Interaction, run_id: int) -> None:
        deadline = interaction.created_at + self.token_lifetime - TOKEN_SAFETY_MARGIN
        last_edit = 0.0
        last_text = ""
        final: RunEvent | None = None
        async for update in self.services.training.watch(run_id):
            if update.final:
                final = update
                break
            now = time.monotonic()
            text = describe_update(update)
            if text == last_text or now - last_edit < EDIT_INTERVAL_SECONDS:
                continue
            if datetime.now(UTC) >= deadline:
                continue  # the token is about to expire: keep watching, report at the end
            last_edit, last_text = now, text
            await self._edit(interaction, text)
        if final is None:
            return
        text = describe_update(final)
        if datetime.now(UTC) < deadline:
            await self._edit(interaction, text)
            return
        await self._post_to_channel(final.notify_channel_id or interaction.channel_id, final)

    async def _edit(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not edit /train progress: %s", error)

    def _on_training_update(self, update: RunEvent) -> None:
        """Every run's events (sync, on the event loop): post results nobody else reports."""
        if not update.final or update.notify_channel_id is None:
            return
        if update.run_id in self._followed:
            return  # the interaction's follower reports it
        self.tasks.start(self._post_to_channel(update.notify_channel_id, update))

    async def _post_to_channel(self, channel_id: int | None, final: RunEvent) -> None:
        if channel_id is None:
            return
        channel = self.bot.get_channel(channel_id) or self.bot.get_partial_messageable(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        try:
            await channel.send(describe_update(final), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not post the result of run %s: %s", final.run_id, error)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(TrainCog(bot, await ensure_services(bot)))
