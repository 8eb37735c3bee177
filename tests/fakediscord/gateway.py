"""The gateway websocket: HELLO, IDENTIFY/RESUME, heartbeats, READY and dispatches.

One `GatewaySession` per connected shard. Frames are zlib-stream compressed when the client
asks for `compress=zlib-stream` in the URL (discord.py does by default), as Discord does.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Payload = dict[str, Any]


class Opcode:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class CloseCode:
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SHARD = 4010
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


@dataclass
class GatewaySession:
    """One shard's connection, after IDENTIFY (or RESUME)."""

    ws: web.WebSocketResponse
    compress: bool
    session_id: str = ""
    shard_id: int = 0
    shard_count: int = 1
    intents: int = 0
    identify: Payload = field(default_factory=dict)
    sequence: int = 0
    heartbeats: int = 0
    sent: list[Payload] = field(default_factory=list)
    _compressor: Any = None
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def handles_guild(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id

    def has_intent(self, intent: int) -> bool:
        return bool(self.intents & intent)

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        async with self._send_lock:
            frame: Payload = {"op": op, "d": data, "s": None, "t": event}
            if op == Opcode.DISPATCH:
                self.sequence += 1
                frame["s"] = self.sequence
                self.sent.append(frame)
            text = json.dumps(frame)
            if self.ws.closed:
                return
            if self.compress:
                if self._compressor is None:
                    self._compressor = zlib.compressobj()
                chunk = self._compressor.compress(text.encode()) + self._compressor.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await self.ws.send_bytes(chunk)
            else:
                await self.ws.send_str(text)

    async def dispatch(self, event: str, data: Any) -> None:
        await self.send(Opcode.DISPATCH, data, event)


@dataclass
class GatewayConfig:
    token: str
    heartbeat_interval_ms: int
    enabled_privileged_intents: int


class GatewayServer:
    """Accepts gateway connections and runs each one's op-code loop.

    `on_identified(session)` is awaited after a successful IDENTIFY; it sends READY and
    GUILD_CREATEs (the fake owns the world, so it builds those payloads).
    """

    def __init__(
        self,
        config: GatewayConfig,
        on_identified: Callable[[GatewaySession], Awaitable[None]],
        on_member_request: Callable[[GatewaySession, Payload], Awaitable[None]],
        on_change: Callable[[], None],
    ) -> None:
        self.config = config
        self.sessions: list[GatewaySession] = []
        self.closed_sessions: list[GatewaySession] = []
        self.identify_payloads: list[Payload] = []
        self.resumes: list[Payload] = []
        self.protocol_errors: list[str] = []
        self._on_identified = on_identified
        self._on_member_request = on_member_request
        self._on_change = on_change
        self._known_sessions: dict[str, GatewaySession] = {}

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if request.query.get("v") != "10" or request.query.get("encoding", "json") != "json":
            self.protocol_errors.append(f"unsupported gateway query {dict(request.query)}")
        session = GatewaySession(ws=ws, compress=request.query.get("compress") == "zlib-stream")
        await session.send(Opcode.HELLO, {"heartbeat_interval": self.config.heartbeat_interval_ms})
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._receive(session, message.data)
        finally:
            if session in self.sessions:
                self.sessions.remove(session)
                self.closed_sessions.append(session)
            self._on_change()
        return ws

    async def _receive(self, session: GatewaySession, text: str) -> None:
        try:
            frame = json.loads(text)
            op, data = frame["op"], frame.get("d")
        except (ValueError, KeyError, TypeError):
            await self._fail(session, CloseCode.DECODE_ERROR, f"undecodable frame {text[:100]!r}")
            return
        if op == Opcode.HEARTBEAT:
            session.heartbeats += 1
            await session.send(Opcode.HEARTBEAT_ACK, None)
        elif op == Opcode.IDENTIFY:
            await self._identify(session, data)
        elif op == Opcode.RESUME:
            await self._resume(session, data)
        elif op == Opcode.REQUEST_GUILD_MEMBERS:
            if session not in self.sessions:
                await self._fail(session, CloseCode.NOT_AUTHENTICATED, "op 8 before IDENTIFY")
                return
            await self._on_member_request(session, data)
        elif op in (Opcode.PRESENCE_UPDATE, Opcode.VOICE_STATE_UPDATE):
            return
        else:
            await self._fail(session, CloseCode.UNKNOWN_OPCODE, f"unknown opcode {op}")
        self._on_change()

    async def _identify(self, session: GatewaySession, data: Payload) -> None:
        self.identify_payloads.append(data)
        if session in self.sessions:
            await self._fail(session, CloseCode.ALREADY_AUTHENTICATED, "second IDENTIFY")
            return
        if data.get("token") != self.config.token:
            await self._fail(
                session, CloseCode.AUTHENTICATION_FAILED, "IDENTIFY with a wrong token"
            )
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await self._fail(session, CloseCode.INVALID_INTENTS, f"invalid intents {intents!r}")
            return
        if intents & Intent.PRIVILEGED & ~self.config.enabled_privileged_intents:
            await self._fail(session, CloseCode.DISALLOWED_INTENTS, "privileged intent not enabled")
            return
        shard = data.get("shard", [0, 1])
        if not isinstance(shard, list) or len(shard) != 2 or not 0 <= shard[0] < shard[1]:
            await self._fail(session, CloseCode.INVALID_SHARD, f"invalid shard {shard!r}")
            return
        session.identify = data
        session.intents = intents
        session.shard_id, session.shard_count = shard
        session.session_id = secrets.token_hex(16)
        self._known_sessions[session.session_id] = session
        self.sessions.append(session)
        await self._on_identified(session)

    async def _resume(self, session: GatewaySession, data: Payload) -> None:
        self.resumes.append(data)
        previous = self._known_sessions.get(data.get("session_id", ""))
        if previous is None or data.get("token") != self.config.token:
            await session.send(Opcode.INVALID_SESSION, False)
            return
        session.session_id = previous.session_id
        session.intents = previous.intents
        session.identify = previous.identify
        session.shard_id, session.shard_count = previous.shard_id, previous.shard_count
        self._known_sessions[session.session_id] = session
        self.sessions.append(session)
        # Replay whatever the client missed (same sequence numbers), then confirm.
        seq = data.get("seq") or 0
        session.sequence = seq
        for frame in previous.sent:
            if frame["s"] > seq:
                await session.send(Opcode.DISPATCH, frame["d"], frame["t"])
        await session.dispatch("RESUMED", {})

    async def _fail(self, session: GatewaySession, code: int, reason: str) -> None:
        self.protocol_errors.append(f"closed {code}: {reason}")
        await session.ws.close(code=code, message=reason.encode())

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT to every shard, as Discord does before maintenance."""
        for session in list(self.sessions):
            await session.send(Opcode.RECONNECT, None)

    async def close_all(self, code: int = 1001, reason: str = "fake discord shutting down") -> None:
        for session in list(self.sessions):
            await session.ws.close(code=code, message=reason.encode())
