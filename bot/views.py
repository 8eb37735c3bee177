"""The two kinds of button rows Parrot sends: `OwnerOnlyView`, whose buttons only the person
it was made for may press, and `Confirm`, a yes/no question built on it.

A press by anyone else gets an ephemeral refusal; a failing button is answered by the same
error handler as a failing command (`bot.errors.reply_with_error`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.errors import reply_with_error
from bot.mentions import NO_MENTIONS


class OwnerOnlyView(discord.ui.View):
    def __init__(
        self,
        owner_id: int,
        *,
        timeout: float,
        refusal: str = "These buttons belong to the person who asked.",
    ) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.refusal = refusal

    def busy_reason(self) -> str | None:
        """Why the owner may not press a button right now (None: they may). Subclasses say."""
        return None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        refusal = self.refusal if interaction.user.id != self.owner_id else self.busy_reason()
        if refusal is None:
            return True
        await interaction.response.send_message(
            refusal, ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return False

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item
    ) -> None:
        await reply_with_error(interaction, error)


class Confirm(OwnerOnlyView):
    """Yes runs `on_confirm` and shows the text it returns; no shows `cancelled_text`."""

    def __init__(
        self,
        owner_id: int,
        on_confirm: Callable[[], Awaitable[str]],
        *,
        confirm_label: str,
        cancel_label: str,
        cancelled_text: str,
        timeout: float,
    ) -> None:
        super().__init__(
            owner_id, timeout=timeout, refusal="Only the person who asked can answer this."
        )
        self.on_confirm = on_confirm
        self.cancelled_text = cancelled_text
        self.confirm.label = confirm_label
        self.cancel.label = cancel_label

    @discord.ui.button(label="Yes", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        text = await self.on_confirm()
        await interaction.response.edit_message(
            content=text, view=None, allowed_mentions=NO_MENTIONS
        )

    @discord.ui.button(label="No", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(
            content=self.cancelled_text, view=None, allowed_mentions=NO_MENTIONS
        )
