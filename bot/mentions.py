"""Parrot never pings anyone: every message, edit and reply it sends carries `NO_MENTIONS`
(the client's default too), and generated text is also made inert by
`bot.render.neutralize_mentions` in case a send ever goes out without it."""

from __future__ import annotations

import discord

NO_MENTIONS = discord.AllowedMentions.none()
