"""Who is typing in each room: never stored, expiring by itself.

A client's ``typing`` frame becomes a control message on the room's channel
(``c|{"op":"typing","room":..,"user":..,"on":true}``) so that every node following the
room learns it; each node keeps, per followed room, who is typing and until when, and
sends its local connections the room's ``typing`` frame (the sorted ids typing now)
whenever that set changes, at most once per event-loop turn. An entry expires ``ttl``
seconds (default 5) after the user's last ``typing``, or at once when the user sends a
message in the room (the sending node announces ``"on": false``). Typing frames from
one user in one room closer than ``interval`` seconds (default 1.5) apart are ignored
(the browser client sends at most one every 2 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from . import channels, protocol

__all__ = ["Typing"]


class Typing:
    """This node's typing indicators (see the module docstring)."""

    def __init__(self, publish: Callable[[str, str], Awaitable[None]],
                 broadcast: Callable[[str, str], None], ttl: float, interval: float) -> None:
        self.ttl = ttl
        self.interval = interval
        self._publish = publish  # through the broker, to every node
        self._broadcast = broadcast  # (room, frame) -> the room's local connections
        # room -> user -> (expiry timer, loop time of the last "on")
        self._rooms: dict[str, dict[str, tuple[asyncio.TimerHandle, float]]] = {}
        self._dirty: set[str] = set()

    async def typed(self, room: str, user: str) -> None:
        """A connection of ``user`` sent ``typing`` in ``room`` (which it is in)."""
        entry = self._rooms.get(room, {}).get(user)
        if entry is not None and asyncio.get_running_loop().time() - entry[1] < self.interval:
            return
        await self._publish(channels.room_channel(room),
                            channels.control("typing", room=room, user=user, on=True))

    async def sent(self, room: str, user: str) -> None:
        """``user`` sent a message in ``room``: they are not typing any more."""
        if user in self._rooms.get(room, {}):
            await self._publish(channels.room_channel(room),
                                channels.control("typing", room=room, user=user, on=False))

    def changed(self, change: dict[str, Any]) -> None:
        """A ``typing`` control message from a followed room's channel."""
        room, user = change.get("room"), change.get("user")
        if not isinstance(room, str) or not isinstance(user, str):
            return
        typing = self._rooms.get(room)
        if typing is None:
            return
        old = typing.pop(user, None)
        if old is not None:
            old[0].cancel()
        on = bool(change.get("on"))
        if on:
            loop = asyncio.get_running_loop()
            typing[user] = (loop.call_later(self.ttl, self._expire, room, user), loop.time())
        if on != (old is not None):  # the set of typing users changed
            self._mark(room)

    def follow(self, room: str) -> None:
        self._rooms.setdefault(room, {})

    def unfollow(self, room: str) -> None:
        for timer, _ in self._rooms.pop(room, {}).values():
            timer.cancel()
        self._dirty.discard(room)

    def resumed(self) -> None:
        """Typing news lost while the broker was away needs no repair: entries expire
        after ``ttl`` and typing clients say it again."""

    def stop(self) -> None:
        for room in list(self._rooms):
            self.unfollow(room)

    def _expire(self, room: str, user: str) -> None:
        typing = self._rooms.get(room)
        if typing is not None and typing.pop(user, None) is not None:
            self._mark(room)

    def _mark(self, room: str) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.add(room)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for room in dirty:
            typing = self._rooms.get(room)
            if typing is not None:
                users = sorted(typing)
                self._broadcast(room, protocol.frame("typing", {"room": room, "users": users}))
