"""What a `/generate` message carries: the text shown so far, its streaming into the
response, and the Regenerate / Continue buttons."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

import discord

from bot.core.errors import InvalidInput
from bot.core.inputs import PROMPT_MAX_CHARS, GenerateOptions
from bot.core.services import ParrotServices
from bot.core.services.actor import Actor
from bot.exts.base import TaskTracker, fitted_send_kwargs
from bot.mentions import NO_MENTIONS
from bot.render import DISCORD_MESSAGE_LIMIT, generation_text
from bot.views import OwnerOnlyView

EDIT_INTERVAL_SECONDS = 1.0
# Continue stops here: past this a message is a book, and each click re-uploads all of it.
MAX_CONTINUED_CHARS = 20_000


@dataclass(frozen=True)
class Generated:
    """What a message shows: the user's prompt and everything sampled after it so far."""

    actor: Actor
    options: GenerateOptions
    continuation: str = ""

    @property
    def full_text(self) -> str:
        return self.options.prompt + self.continuation


async def stream_into_response(
    interaction: discord.Interaction,
    services: ParrotServices,
    shown: Generated,
    options: GenerateOptions,
    *,
    view: discord.ui.View | None,
) -> Generated:
    """Sample `options` and append it to `shown`, editing the interaction's message as it goes.

    Returns what the message finally shows. The response must already be acknowledged
    (deferred); edits go through the interaction webhook, at most once per
    EDIT_INTERVAL_SECONDS, and the final edit attaches the buttons.
    """
    sampled = ""
    last_edit = time.monotonic()
    async for chunk in services.generation.stream(shown.actor.server_id, options):
        sampled += chunk
        now = time.monotonic()
        if now - last_edit >= EDIT_INTERVAL_SECONDS:
            last_edit = now
            partial = generation_text(shown.options.prompt, shown.continuation + sampled)
            if len(partial) > DISCORD_MESSAGE_LIMIT:
                # The final edit attaches the full text; meanwhile show its newest part.
                partial = "…" + partial[-(DISCORD_MESSAGE_LIMIT - 1) :]
            await interaction.edit_original_response(content=partial, allowed_mentions=NO_MENTIONS)
    final = replace(shown, continuation=shown.continuation + sampled)
    shown_text = generation_text(final.options.prompt, final.continuation)
    note = services.generation.source_note(shown.actor.server_id)
    kwargs = fitted_send_kwargs(
        f"{note}\n{shown_text}" if note else shown_text, plain=final.full_text
    )
    if view is not None:
        kwargs["view"] = view
    await interaction.edit_original_response(**kwargs, allowed_mentions=NO_MENTIONS)
    return final


class GenerationView(OwnerOnlyView):
    """Regenerate / Continue for one generated message; only its requester may press them."""

    def __init__(
        self, services: ParrotServices, tasks: TaskTracker, shown: Generated, timeout: float
    ) -> None:
        super().__init__(
            shown.actor.user_id,
            timeout=timeout,
            refusal="These buttons belong to the person who asked; use /generate for your own.",
        )
        self.services = services
        self.tasks = tasks
        self.shown = shown
        self.last_interaction: discord.Interaction | None = None
        self.busy = False  # a Regenerate/Continue is streaming into the message

    def busy_reason(self) -> str | None:
        return "Still writing: press again when this text is finished." if self.busy else None

    async def _extend(
        self, interaction: discord.Interaction, shown: Generated, options: GenerateOptions
    ) -> None:
        # Busy before the first await: a second click a few milliseconds later must see it,
        # or two streams would write into one message.
        self.busy = True
        try:
            await self.services.generation.take_cooldown(self.shown.actor)
            await interaction.response.defer()
            self.last_interaction = interaction
            final = await self.tasks.run(
                stream_into_response(interaction, self.services, shown, options, view=self)
            )
        finally:
            self.busy = False
        self.shown = final or self.shown

    @discord.ui.button(label="Regenerate", style=discord.ButtonStyle.primary, emoji="🔁")
    async def regenerate(
        self, interaction: discord.Interaction, _button: discord.ui.Button
    ) -> None:
        # A new sample of the same prompt: a fixed seed would only repeat the same text.
        options = replace(self.shown.options, seed=None)
        await self._extend(
            interaction, replace(self.shown, options=options, continuation=""), options
        )

    @discord.ui.button(label="Continue", style=discord.ButtonStyle.secondary, emoji="➡️")
    async def continue_(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        if len(self.shown.full_text) >= MAX_CONTINUED_CHARS:
            raise InvalidInput("This text is long enough already: start a new one with /generate.")
        # Re-prime with the tail of the text so far: the model only needs recent context.
        prime = self.shown.full_text[-PROMPT_MAX_CHARS:]
        options = replace(self.shown.options, prompt=prime, seed=None)
        await self._extend(interaction, self.shown, options)

    async def on_timeout(self) -> None:
        # Take the dead buttons away; the interaction token may be gone, which is fine.
        if self.last_interaction is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await self.last_interaction.edit_original_response(
                view=None, allowed_mentions=NO_MENTIONS
            )
