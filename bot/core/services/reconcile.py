"""Catching up with what Discord did while the bot was offline, and following the deletion
of whole channels and threads while it runs.

A fresh IDENTIFY replays nothing: a server that removed the bot, or a channel deleted, while
the bot was down leaves no event behind. So once every shard is ready, and after
`privacy.reconcile_grace_seconds`, what is stored is checked against what the gateway shows:

- a stored server the bot is no longer in is removed (`PrivacyService.remove_server`: its
  rows, checkpoints and cooldowns), as if it had left while running;
- in a server the bot is in and that is available, a channel with stored settings that no
  longer exists loses its collected messages (Discord sends no per-message deletes for a
  deleted channel; `deletions.delete_channel_messages` counts them towards a rebuild).

The grace period keeps the purge away from a start that is not what it seems: a bot started
with another application's token sees other servers, and its operator has that long to stop
it before anything is deleted. Servers in an outage are still members (only unavailable),
so they are never removed, and their channels are not checked until they are back.

The gateway is behind `GatewayView`, so this module stays free of discord.py. One check runs
at a time; `close()` ends a pending one at once and lets a running one finish the server or
channel it is on (a server half-removed would leave its checkpoint files behind).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.logs import get_logger
from bot.core.services.collection import CollectionService
from bot.core.services.privacy import PrivacyService
from bot.core.storage import deletions
from bot.core.storage.db import run_in_session
from bot.core.storage.tables import Channel, Server

log = get_logger(__name__)

# Stored server id -> the channel ids it has settings rows for.
StoredChannels = dict[int, list[int]]


class GatewayView(Protocol):
    """What the bot sees on Discord, read live, in plain ids (the cog implements it)."""

    def serves(self, server_id: int) -> bool:
        """Whether this process's shards handle the server (other shards may run elsewhere,
        and their servers are not this process's to judge)."""
        ...

    def is_member(self, server_id: int) -> bool:
        """Whether the bot is in the server, available or not."""
        ...

    def has_channel(self, server_id: int, channel_id: int) -> bool | None:
        """Whether the channel or thread exists; None when that cannot be told (the bot is
        not in the server, or the server is unavailable)."""
        ...


@dataclass(frozen=True)
class ReconcileReport:
    servers_removed: tuple[int, ...] = ()
    channels_purged: tuple[tuple[int, int], ...] = ()  # (server id, channel id)
    messages_deleted: int = 0


class Reconciler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        collection: CollectionService,
        privacy: PrivacyService,
        grace_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._collection = collection
        self._privacy = privacy
        self._grace_seconds = max(0.0, grace_seconds)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # checks finished (a failed one counts too)
        self.last_report: ReconcileReport | None = None

    def schedule(self, view: GatewayView) -> bool:
        """Check against `view` once the grace period has passed. False when closed, or when a
        check is already pending or running: that one reads the view as it is by then."""
        if self._stopping.is_set() or (self._task is not None and not self._task.done()):
            return False
        self._task = asyncio.create_task(self._after_grace(view), name="parrot-reconcile")
        return True

    async def close(self) -> None:
        """Cancel a pending check; wait for a running one to finish its current step."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def reconcile(self, view: GatewayView) -> ReconcileReport:
        # Stored first, then the view: a server the bot joins meanwhile is in the view by the
        # time it is judged, so its new rows are never mistaken for a server it left.
        stored = await run_in_session(self._sessions, stored_channels)
        removed = await self._remove_servers(view, stored)
        purged, deleted = await self._purge_channels(view, stored)
        return ReconcileReport(tuple(removed), tuple(purged), deleted)

    async def delete_channels(self, server_id: int, channel_ids: Sequence[int]) -> int:
        """Delete what was collected from these channels or threads (deleted on Discord)."""
        # Messages still buffered would be stored after the purge and bring the text back.
        await self._collection.buffer.flush()
        return await run_in_session(
            self._sessions,
            lambda s: sum(
                deletions.delete_channel_messages(s, server_id, channel_id)
                for channel_id in channel_ids
            ),
        )

    async def _after_grace(self, view: GatewayView) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=self._grace_seconds)
            return  # closing before the grace period ended
        except TimeoutError:
            pass
        try:
            self.last_report = await self.reconcile(view)
        except Exception:
            log.exception("reconciling with Discord failed; it is tried again at the next ready")
        finally:
            self.runs += 1

    async def _remove_servers(self, view: GatewayView, stored: StoredChannels) -> list[int]:
        removed: list[int] = []
        for server_id in sorted(stored):
            if self._stopping.is_set():
                break
            # Asked one server at a time, live: a removal takes a while, and the bot may
            # rejoin a server meanwhile.
            if not view.serves(server_id) or view.is_member(server_id):
                continue
            log.info("no longer in server %s: deleting its data", server_id)
            await self._privacy.remove_server(server_id)
            removed.append(server_id)
        return removed

    async def _purge_channels(
        self, view: GatewayView, stored: StoredChannels
    ) -> tuple[list[tuple[int, int]], int]:
        purged: list[tuple[int, int]] = []
        deleted = 0
        for server_id, channel_ids in sorted(stored.items()):
            if self._stopping.is_set():
                break
            if not view.serves(server_id):
                continue
            # Only a definite "gone": None (unavailable, or not a member) keeps the messages.
            gone = [c for c in channel_ids if view.has_channel(server_id, c) is False]
            if not gone:
                continue
            log.info(
                "channels %s of server %s were deleted: deleting their messages", gone, server_id
            )
            deleted += await self.delete_channels(server_id, gone)
            purged.extend((server_id, channel_id) for channel_id in gone)
        return purged, deleted


def stored_channels(session: Session) -> StoredChannels:
    """Every stored server, with the channels it has settings for. Settings rows, opted in or
    not: a channel opted out keeps what it gave, and that goes too when it is deleted."""
    servers: StoredChannels = {
        int(server_id): [] for server_id in session.scalars(select(Server.id))
    }
    rows = session.execute(
        select(Channel.server_id, Channel.channel_id).order_by(
            Channel.server_id, Channel.channel_id
        )
    )
    for server_id, channel_id in rows:
        servers.setdefault(int(server_id), []).append(int(channel_id))
    return servers
