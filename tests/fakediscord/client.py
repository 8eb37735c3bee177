"""Connecting a real discord.py client to a `FakeDiscord`.

discord.py reads its REST base from `discord.http.Route.BASE` and its gateway from
`DiscordWebSocket.DEFAULT_GATEWAY` (non-sharded clients and AutoShardedBot with a fixed
shard count never call GET /gateway/bot). `pointed_at(fake)` swaps both and restores them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakediscord.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)

# Seconds discord.py waits after the last GUILD_CREATE before firing on_ready; its default
# of 2 s only matters on real Discord, where GUILD_CREATEs trickle in.
FAST_GUILD_READY_TIMEOUT = 0.05


async def _identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
    return None


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Make every discord.py client in this process talk to `fake` while inside."""
    saved_base, saved_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved_base, saved_gateway


@contextlib.asynccontextmanager
async def run_bot(
    client: ClientT,
    fake: FakeDiscord,
    *,
    ready_timeout: float = 10.0,
    guild_ready_timeout: float = FAST_GUILD_READY_TIMEOUT,
) -> AsyncIterator[ClientT]:
    """Log `client` in to `fake`, connect the gateway, wait for on_ready, close on exit.

    Runs `setup_hook` (so cogs load and a `tree.sync()` there is recorded) exactly as
    `client.start()` would. Raises if the client dies before becoming ready.
    """
    with pointed_at(fake):
        client._connection.guild_ready_timeout = guild_ready_timeout
        if type(client).before_identify_hook is discord.Client.before_identify_hook:
            # The default hook sleeps 5 s before each non-first shard's IDENTIFY (Discord's
            # identify rate limit); the fake has none, so skip it unless the bot overrides it.
            setattr(client, "before_identify_hook", _identify_at_once)  # noqa: B010
        try:
            await client.login(fake.token)
        except BaseException:
            await client.close()
            raise
        connection = asyncio.create_task(client.connect(reconnect=True), name="fake-discord-client")
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {connection, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if connection in done:
                connection.result()  # re-raises the client's failure
                raise RuntimeError("discord client stopped before it was ready")
            if ready not in done:
                problems = "; ".join(fake.problems()) or "no problems recorded"
                raise TimeoutError(f"client not ready after {ready_timeout}s ({problems})")
            yield client
        finally:
            ready.cancel()
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(connection, timeout=5.0)
