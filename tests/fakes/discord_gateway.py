"""The fake Discord's websocket gateway: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, dispatches.

Sharding as Discord does it: IDENTIFY's `shard` is `[shard_id, num_shards]` (absent: `[0, 1]`); a session
receives the guilds, and the events of the guilds, whose `(guild_id >> 22) % num_shards` is its shard id, and
shard 0 receives direct messages. An impossible shard closes the connection with 4010 (Invalid shard).

RESUME -> RESUMED for a session it knows (same shard, same sequence). `drop()` closes every connection as Discord
does when a session must reconnect (close code 4000) and holds the gateway down (new connections get no HELLO)
until `restore()`."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_state import PRIVILEGED_INTENTS

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0, 1, 2, 3, 6, 8, 9, 10, 11,
)  # fmt: skip
HEARTBEAT_INTERVAL_MS = 41250
# Close codes (discord-api-docs, "Gateway close event codes").
AUTHENTICATION_FAILED, INVALID_SHARD, INVALID_INTENTS, DISALLOWED_INTENTS = 4004, 4010, 4013, 4014
UNKNOWN_ERROR = 4000  # "We're not sure what went wrong. Try reconnecting?": clients resume
# Events whose guild is the payload itself rather than its guild_id.
_GUILD_EVENTS = {"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"}


def shard_of(guild_id: int | None, num_shards: int) -> int:
    """Which shard receives a guild's events (discord-api-docs, "Sharding"); direct messages go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % num_shards


def guild_of(event: str, data: dict[str, Any]) -> int | None:
    found = data.get("id") if event in _GUILD_EVENTS else data.get("guild_id")
    return int(found) if found is not None else None


class Session:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.sequence = 0
        self.ready = False
        self.session_id: str | None = None
        self.shard = (0, 1)  # (shard id, number of shards), from IDENTIFY
        self.lock = asyncio.Lock()  # sequence numbers must reach the client in order

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        async with self.lock:
            seq = None
            if op == DISPATCH:
                self.sequence += 1
                seq = self.sequence
            await self.ws.send_str(json.dumps({"op": op, "d": data, "s": seq, "t": event}))


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: list[Session] = []
        self.presences: list[dict[str, Any]] = []
        # session id -> (last sequence sent, shard): what a RESUME may pick up
        self.known: dict[str, tuple[int, tuple[int, int]]] = {}
        self.resumed = 0
        self._up = asyncio.Event()
        self._up.set()

    async def drop(self) -> None:
        """Close every connection (4000: the client reconnects and resumes) and accept none until `restore`."""
        self._up.clear()
        for session in list(self.sessions):
            await session.ws.close(code=UNKNOWN_ERROR, message=b"Unknown error.")
        self.fake.notify()

    def restore(self) -> None:
        """Let the waiting reconnection through: HELLO, then its RESUME is answered with RESUMED."""
        self._up.set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = Session(ws)
        self.sessions.append(session)
        try:
            await self._up.wait()  # while dropped, the connection opens but nothing answers
            await session.send(HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    self.fake.fail(f"gateway: unexpected {frame.type.name} frame")
                    continue
                await self._receive(session, json.loads(frame.data))
        finally:
            self.sessions.remove(session)
            if session.session_id is not None:
                self.known[session.session_id] = (session.sequence, session.shard)
            self.fake.notify()
        return ws

    async def _receive(self, session: Session, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == HEARTBEAT:
            await session.send(HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(session, data)
        elif op == PRESENCE:
            self.presences.append(data)
        elif op == RESUME:
            await self._resume(session, data)
        elif op == REQUEST_MEMBERS:
            guild = self.fake.guilds[int(data["guild_id"])]
            chunk = {"guild_id": str(guild.id), "members": [m.payload() for m in guild.members.values()],
                     "chunk_index": 0, "chunk_count": 1, "nonce": data.get("nonce")}  # fmt: skip
            await session.send(DISPATCH, chunk, "GUILD_MEMBERS_CHUNK")
        else:
            self.fake.fail(f"gateway: unexpected opcode {op}: {payload}")

    async def _resume(self, session: Session, data: dict[str, Any]) -> None:
        """A known session picks up where it was (nothing was dispatched meanwhile: `dispatch` needs a ready
        session); anything else is invalid and the client identifies anew."""
        known = self.known.pop(str(data.get("session_id")), None)
        if data.get("token") != self.fake.token or known is None or data.get("seq") != known[0]:
            await session.send(INVALID_SESSION, False)
            return
        session.session_id, (session.sequence, session.shard) = str(data["session_id"]), known
        await session.send(DISPATCH, {}, "RESUMED")
        session.ready = True
        self.resumed += 1
        self.fake.notify()

    async def _identify(self, session: Session, data: dict[str, Any]) -> None:
        fake = self.fake
        if data.get("token") != fake.token:
            await session.ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await session.ws.close(code=INVALID_INTENTS, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~fake.portal_intents:
            await session.ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        shard = data.get("shard", [0, 1])
        if not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await session.ws.close(code=INVALID_SHARD, message=b"Invalid shard.")
            return
        session.shard = (shard[0], shard[1])
        guilds = [g for g in fake.guilds.values() if shard_of(g.id, shard[1]) == shard[0]]
        fake.identify, fake.intents = data, intents
        session.session_id = uuid.uuid4().hex
        ready = {
            "v": 10,
            "user": {
                **fake.bot_user.payload(),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
                "email": None,
            },
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
            "session_id": session.session_id,
            "resume_gateway_url": fake.gateway_url,
            "application": {"id": str(fake.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "session_type": "normal",
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        await session.send(DISPATCH, ready, "READY")
        for guild in guilds:
            await session.send(DISPATCH, guild.payload(), "GUILD_CREATE")
        session.ready = True
        fake.notify()

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        guild = guild_of(event, data)
        sessions = [s for s in self.sessions if s.ready and shard_of(guild, s.shard[1]) == s.shard[0]]
        if not sessions:
            where = f"guild {guild}" if guild is not None else "direct messages"
            raise RuntimeError(f"no bot is connected to the fake gateway to receive {event} (of {where})")
        for session in sessions:
            await session.send(DISPATCH, data, event)

    async def close(self) -> None:
        for session in list(self.sessions):
            await session.ws.close()
