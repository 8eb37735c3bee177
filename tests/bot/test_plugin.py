"""Plugin mode: Parrot's cogs inside someone else's discord.py bot."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.plugin import CONFIG_ENV, SERVICES_ATTR
from tests.fakediscord import FakeDiscord, run_bot


class HostBot(commands.Bot):
    """An unrelated bot with its own prefix commands and the default CommandTree."""

    async def setup_hook(self) -> None:
        await self.load_extension("bot.plugin")
        await self.tree.sync()


async def test_plugin_loads_into_any_bot(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "parrot.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[schedule]\nenabled = false\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv("PARROT_DATA_DIR", raising=False)
    monkeypatch.delenv("PARROT_DATABASE_URL", raising=False)
    guild = fake_discord.add_guild("Host")
    channel = fake_discord.add_text_channel(guild)
    user = fake_discord.add_user("someone")
    intents = discord.Intents.default()
    intents.message_content = True
    bot = HostBot(command_prefix="!", intents=intents)
    async with run_bot(bot, fake_discord):
        services = getattr(bot, SERVICES_ATTR)
        assert services is not None
        assert {"Generate", "Train", "Corpus", "Model", "Privacy", "Collect"} <= set(bot.cogs)
        handle = await fake_discord.invoke_slash(guild, channel, user, "generate", {"start": "hi"})
        edit = await handle.wait_edit(timeout_s=30)
        assert "/train" in (edit.content or "")
        assert edit.allowed_mentions == {"parse": []}
    assert getattr(bot, SERVICES_ATTR) is None  # unloading the plugin closed its services
