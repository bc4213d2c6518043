"""The Redis store: every room's log shared by all the processes of a chat.

Each write is one Lua script, so it is atomic across processes: ``append`` takes the
room's next seq, checks and sets the send key, and applies retention by count in one
step; an edit or a change of reactions is computed here from the message as read and
written only if the message is still that (else computed again); reads return the
current state with the position of the same snapshot. docs/design.md ("Redis") gives
the layout and why.

Durability is Redis's: acknowledged messages survive a restart only with the
append-only file and ``appendfsync always``; ``start`` refuses a server whose
``maxmemory-policy`` may evict keys (a room's log with keys missing is broken) and warns
when the append-only file is off or not synced on every write.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
import time
from collections.abc import Collection
from typing import Any

from .. import _redis, channels, log
from .._redis import room_key, translated, user_part
from ..errors import ConfigurationError
from ..log import Draft, Entry, Position
from ..store import Appended, Change, ReadState, Retention, Store
from ..user import Message
from . import _redis_lua as lua
from .memory import toggled

__all__ = ["RedisStore"]

logger = logging.getLogger("chitchat.redis")

_ROOM_PARTS = ("meta", "log", "ids", "msgs", "own", "reads")
#: Scripts that only read (``ensure`` may create an empty room: harmless to repeat).
_READS = frozenset({"GET", "POSITION", "READ_AFTER", "RECENT", "READ_STATE"})
#: Entries dropped per script call by ``trim`` (each call blocks Redis briefly).
TRIM_BATCH = 1000
#: Rooms whose key names are kept built (past it, the cache starts again).
KEYS_CACHED = 10_000
#: Attempts at an edit or a change of reactions racing other writers of the message.
CHANGE_ATTEMPTS = 20


class RedisStore(Store):
    """The store contract on Redis (>= 6.2) at ``url``; every key starts with ``prefix``.

    ``capacity``: entries kept per room (the oldest go as new ones come, in the same
    script; None: no limit). ``dedup_window``: seconds a send key is kept (its time to
    live). ``Chat(redis=url)`` passes the Chat's ``retention`` count and
    ``dedup_window``. ``publish``: each script that makes an entry also publishes it on
    the room's channel (one round trip per send, and a room's entries published in seq
    order); the ``RedisBroker`` of the same prefix must then be made with
    ``store_publishes=True`` so that it does not publish them again. ``Chat(redis=url)``
    sets both. Scripts assume one Redis server (not Cluster): a send key may name a
    message of any room.
    """

    remote = True  # one pipeline, in the order called

    def __init__(self, url: str, *, prefix: str = "chitchat", capacity: int | None = 10_000,
                 dedup_window: float = 24 * 3600.0, publish: bool = False) -> None:
        if capacity is not None and capacity < 1:
            raise ConfigurationError("RedisStore capacity must be at least 1 (or None)")
        if not dedup_window > 0:
            raise ConfigurationError("RedisStore dedup_window must be positive")
        self._pipeline = _redis.Pipeline(url)  # refuses what is not a Redis URL
        self.url = url
        self.prefix = prefix
        self._capacity = capacity or 0
        self._ttl = max(1, math.ceil(dedup_window))
        self._publish = publish
        # Epochs for rooms this store may create: random per store, then counted (a
        # random token per call cost a system call on every append, for the rare
        # append that creates its room).
        self._epoch_base = secrets.token_hex(6)
        self._epochs = itertools.count()
        self._room_keys: dict[str, list[str]] = {}  # each room's key names, built once

    # -- plumbing -----------------------------------------------------------------------

    def _keys(self, room: str) -> list[str]:
        keys = self._room_keys.get(room)
        if keys is None:
            if len(self._room_keys) >= KEYS_CACHED:
                self._room_keys.clear()
            keys = self._room_keys[room] = [
                *(room_key(self.prefix, room, part) for part in _ROOM_PARTS),
                f"{self.prefix}:rooms"]
        return keys

    def _channel(self, room: str) -> str:
        return f"{self.prefix}:{channels.room_channel(room)}" if self._publish else ""

    def _send_key(self, user: str, key: str) -> str:
        return f"{self.prefix}:sk:{user_part(user)}{key}"

    async def _run(self, name: str, room: str, *args: Any,
                   extra: list[str] | None = None) -> Any:
        """Run a room script: the room's keys (then ``extra``), and ARGV epoch, room,
        now, capacity, then ``args``."""
        script = lua.SCRIPTS[name]
        epoch = f"{self._epoch_base}{next(self._epochs):x}"
        argv = [epoch, room, repr(time.time()), self._capacity, *args]
        keys = self._keys(room) + extra if extra else self._keys(room)
        if name not in _READS:
            return await self._pipeline.script(script, keys, argv)
        try:
            return await self._pipeline.script(script, keys, argv)
        except _redis.stale() as exc:
            # A connection to a Redis that restarted fails once: a read (and only a
            # read: a write might have been applied) is safe to send again.
            log_stale(exc)
            return await self._pipeline.script(script, keys, argv)

    async def start(self) -> None:
        await _redis.check_server(self.url, "RedisStore")

    async def close(self) -> None:
        """Finishes the writes under way, then closes the connection."""
        await self._pipeline.close()

    # -- the log ------------------------------------------------------------------------

    async def append(self, room: str, draft: Draft, key: str | None = None) -> Appended:
        author = "" if draft.user is None else user_part(draft.user)
        if draft.user is None:
            key = None
        send_key = self._send_key(draft.user, key) if draft.user and key else "-"
        async with translated("append"):
            result = await self._run(
                "APPEND", room, draft.id, draft.head(room), draft.tail(), author, key or "",
                self._ttl, self.prefix, self._channel(room),
                extra=[send_key, f"{self.prefix}:skz"])
        if result[0] == 0:
            return Appended(log.message_from_json(result[1]), duplicate=True)
        return Appended(draft.message(room, int(result[0])))

    async def edit(self, room: str, message_id: str, data: Any, data_json: str,
                   edited: int) -> Change | None:
        return await self._change(room, message_id, "e", lambda m: log.changed(
            m, data=data, data_json=data_json, edited=edited))

    async def react(self, room: str, message_id: str, user: str, emoji: str,
                    max_emoji: int) -> Change | None:
        return await self._change(room, message_id, "r", lambda m: log.changed(
            m, reactions=toggled(m.reactions, user, emoji, max_emoji)))

    async def _change(self, room: str, message_id: str, kind: str, apply: Any) -> Change | None:
        message = await self.get(room, message_id)
        for _ in range(CHANGE_ATTEMPTS):
            if message is None:
                return None
            after: Message = apply(message)  # may raise TooManyReactions

            def frame(seq: int, after: Message = after) -> str:
                return (log.edit_frame(room, seq, after) if kind == "e" else
                        log.reactions_frame(room, seq, message_id, after.reactions))

            async with translated("a change of a message"):
                result = await self._run("CHANGE", room, message_id, kind, message.raw,
                                         after.raw, self._channel(room), *_around_seq(frame(0)))
            if result is None:
                return None
            if result[0] != 0:
                seq = int(result[0])
                return Change(Entry(seq, frame(seq), False), after)
            message = log.message_from_json(result[1])  # changed meanwhile: again
        raise RuntimeError(f"message {message_id!r} kept changing under {CHANGE_ATTEMPTS} "
                           "attempts to change it")

    async def remove(self, room: str, message_id: str) -> Change | None:
        async with translated("remove"):
            result = await self._run("REMOVE", room, message_id, self._channel(room),
                                     *_around_seq(log.remove_frame(room, 0, message_id)))
        if result is None:
            return None
        seq = int(result[0])
        return Change(Entry(seq, log.remove_frame(room, seq, message_id), False),
                      log.message_from_json(result[1]))

    async def get(self, room: str, message_id: str) -> Message | None:
        async with translated("get"):
            raw = await self._run("GET", room, message_id)
        return None if raw is None else log.message_from_json(raw)

    async def find(self, user: str, key: str) -> Message | None:
        keys = [self._send_key(user, key)]
        async with translated("find"):
            try:
                raw = await self._pipeline.script(lua.SCRIPTS["FIND"], keys, [self.prefix])
            except _redis.stale() as exc:
                log_stale(exc)
                raw = await self._pipeline.script(lua.SCRIPTS["FIND"], keys, [self.prefix])
        return None if raw is None else log.message_from_json(raw)

    async def position(self, room: str) -> Position:
        async with translated("position"):
            epoch, first, last = await self._run("POSITION", room)
        return Position(epoch, int(first), int(last))

    async def read_after(self, room: str, after: int, limit: int) -> tuple[Position, list[Entry]]:
        async with translated("read_after"):
            result = await self._run("READ_AFTER", room, after, limit)
        entries: list[Entry] = []
        for i in range(3, len(result), 3):
            seq, kind, text = int(result[i]), result[i + 1], result[i + 2]
            if kind == "m":
                entries.append(Entry(seq, text, True))
            elif kind == "x":
                entries.append(Entry(seq, log.remove_frame(room, seq, text), False))
            elif kind == "e":
                entries.append(Entry(seq, log.edit_frame(room, seq,
                                                         log.message_from_json(text)), False))
            else:
                target = log.message_from_json(text)
                entries.append(Entry(seq, log.reactions_frame(room, seq, target.id,
                                                              target.reactions), False))
        return _position(result), entries

    async def recent(self, room: str, limit: int,
                     before: int | None = None) -> tuple[Position, list[Message]]:
        async with translated("recent"):
            result = await self._run("RECENT", room, "" if before is None else before, limit)
        return _position(result), [log.message_from_json(raw) for raw in result[3:]]

    # -- read positions -----------------------------------------------------------------

    async def mark_read(self, user: str, room: str, seq: int) -> int:
        async with translated("mark_read"):
            return int(await self._run("MARK_READ", room, user, seq,
                                       extra=[f"{self.prefix}:ur:{user}"]))

    async def read_state(self, user: str, room: str, readers: int) -> ReadState:
        async with translated("read_state"):
            last_read, unread, top = await self._run("READ_STATE", room, user,
                                                     user_part(user), readers)
        reads = {str(top[i]): int(float(top[i + 1])) for i in range(0, len(top), 2)}
        return ReadState(int(last_read), int(unread), reads)

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, int]:
        async with translated("unread"):
            names = set(rooms) | await _redis.members(self._pipeline,
                                                      f"{self.prefix}:ur:{user}")
            ordered = sorted(names)
            # Issued together: one pipeline.
            results = await asyncio.gather(*[self._run("READ_STATE", room, user,
                                                       user_part(user), 0)
                                             for room in ordered])
        return {room: int(result[1]) for room, result in zip(ordered, results, strict=True)}

    # -- retention ----------------------------------------------------------------------

    async def trim(self, retention: Retention, dedup_window: float, now: float) -> None:
        count = retention.count or 0
        cutoff = "" if retention.age is None else repr(now - retention.age)
        pipeline = self._pipeline
        async with translated("trim"):
            if count or cutoff:
                cursor = "0"
                while True:
                    cursor, rooms = await pipeline.call("SSCAN", f"{self.prefix}:rooms",
                                                          cursor, "COUNT", 500)
                    for batch in _redis.chunks(rooms, 100):
                        await self._trim_rooms(batch, count, cutoff)
                    if cursor == "0":
                        break
            while await pipeline.script(lua.SCRIPTS["TRIM_KEYS"], [f"{self.prefix}:skz"], [
                    self.prefix, repr(now - dedup_window), TRIM_BATCH]) >= TRIM_BATCH:
                pass

    async def _trim_rooms(self, rooms: list[str], count: int, cutoff: str) -> None:
        script = lua.SCRIPTS["TRIM_ROOM"]
        while rooms:
            more = await asyncio.gather(*[self._pipeline.script(
                script, self._keys(room), [count, cutoff, TRIM_BATCH]) for room in rooms])
            rooms = [room for room, again in zip(rooms, more, strict=True) if again]


def _around_seq(frame: str) -> tuple[str, str]:
    """A frame made with seq 0, cut around that seq (the script puts the real one in).
    The first ``,"seq":0`` is the frame's own: before it stand only its type and the room,
    a JSON string, in which a quote is always escaped."""
    head, tail = frame.split(',"seq":0', 1)
    return head + ',"seq":', tail


def log_stale(exc: BaseException) -> None:
    logger.debug("the Redis connection had been lost (%s): reading again", exc)


def _position(result: list[Any]) -> Position:
    return Position(result[0], int(result[1]), int(result[2]))
