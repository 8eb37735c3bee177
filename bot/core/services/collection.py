"""Collecting messages from opted-in channels, and following their edits and deletions.

Messages go through the write-behind `MessageBuffer`; a channel's settings are cached per
server and dropped whenever an admin changes them (`forget_settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.core.storage import corpus, deletions, tables
from bot.core.storage.db import run_in_session, session_scope
from bot.core.storage.message_buffer import MessageBuffer


@dataclass(frozen=True)
class ChannelSettings:
    collect: bool = False
    replies: bool = False
    reply_chance: float = 0.0


class CollectionService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.buffer = MessageBuffer(self._store_messages)
        self._channels: dict[int, dict[int, ChannelSettings]] = {}

    async def channel_settings(self, server_id: int, channel_id: int) -> ChannelSettings:
        """Collection/reply settings of a channel (cached per server)."""
        settings = self._channels.get(server_id)
        if settings is None:
            settings = await run_in_session(
                self._sessions, lambda s: _server_channel_settings(s, server_id)
            )
            self._channels[server_id] = settings
        return settings.get(channel_id, ChannelSettings())

    def forget_settings(self, server_id: int) -> None:
        """Drop the server's cached channel settings (they changed, or the server left)."""
        self._channels.pop(server_id, None)

    async def collect_message(
        self,
        server_id: int,
        *,
        message_id: int,
        channel_id: int,
        author_id: int,
        content: str,
        created_at: datetime | None = None,
        settings_channel_id: int | None = None,
    ) -> bool:
        """Buffer a message for storage when its channel is opted in; returns whether it was.

        `settings_channel_id` is the channel whose opt-in applies when it is not
        `channel_id` itself (a thread follows its parent channel).
        """
        settings = await self.channel_settings(server_id, settings_channel_id or channel_id)
        if not settings.collect:
            return False
        incoming = corpus.IncomingMessage(message_id, channel_id, author_id, content, created_at)
        await self.buffer.add(server_id, incoming)
        return True

    async def edit_message(self, message_id: int, content: str) -> bool:
        await self.buffer.flush()
        return await run_in_session(
            self._sessions, lambda s: deletions.edit_message(s, message_id, content)
        )

    async def delete_messages(self, message_ids: list[int]) -> int:
        self.buffer.discard(message_ids)
        return await run_in_session(
            self._sessions, lambda s: deletions.delete_messages(s, message_ids)
        )

    def _store_messages(self, server_id: int, messages: list[corpus.IncomingMessage]) -> int:
        with session_scope(self._sessions) as session:
            return corpus.add_messages(session, server_id, messages)


def _server_channel_settings(session: Session, server_id: int) -> dict[int, ChannelSettings]:
    server = session.get(tables.Server, server_id)
    server_collects = server is None or server.collecting
    return {
        c.channel_id: ChannelSettings(
            collect=c.collect and server_collects,
            replies=c.replies,
            reply_chance=c.reply_chance,
        )
        for c in corpus.list_channels(session, server_id)
    }
