"""The tree's error precedence: what each failure tells the user."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord import app_commands
from sqlalchemy import text

from bot.core.errors import InvalidInput, ModelNotReady, NotAllowed, OnCooldown
from bot.core.storage.db import session_scope
from bot.errors import GENERIC_FAILURE, error_message
from models.errors import CheckpointError
from tests.bot.conftest import World


def invoke_error(original: Exception) -> app_commands.CommandInvokeError:
    command: Any = app_commands.Command(name="x", description="x", callback=_noop)
    return app_commands.CommandInvokeError(command, original)


async def _noop(interaction: discord.Interaction) -> None:
    return None


def test_domain_errors_speak_for_themselves() -> None:
    assert error_message(invoke_error(ModelNotReady())) == (str(ModelNotReady()), False)
    assert "/train" in error_message(ModelNotReady())[0]
    assert error_message(OnCooldown(12.3)) == ("Slow down: try again in 12s.", False)
    assert error_message(NotAllowed("nope"))[0] == "nope"
    assert error_message(InvalidInput("bad"))[0] == "bad"
    assert error_message(CheckpointError("corrupt file"))[0] == "corrupt file"


def test_discord_check_failures() -> None:
    assert "Manage Guild" in error_message(app_commands.MissingPermissions(["manage_guild"]))[0]
    assert (
        error_message(app_commands.NoPrivateMessage())[0] == "This command only works in a server."
    )
    cooldown = app_commands.CommandOnCooldown(app_commands.Cooldown(1, 10.0), 4.2)
    assert error_message(cooldown)[0] == "Slow down: try again in 4s."


def test_unexpected_errors_are_generic_and_logged() -> None:
    assert error_message(invoke_error(ZeroDivisionError())) == (GENERIC_FAILURE, True)


async def test_a_real_failure_gets_the_generic_answer_and_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # Break the database under the bot: a bug-class failure, not a user error.
    with session_scope(world.services.sessions) as session:
        session.execute(text("DROP TABLE documents"))
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "corpus", {}, subcommand="status"
    )
    edit = await handle.wait_edit(timeout_s=30)
    assert edit.content == GENERIC_FAILURE
    assert handle.ephemeral
    assert any("unexpected error in corpus status" in r.getMessage() for r in caplog.records)
