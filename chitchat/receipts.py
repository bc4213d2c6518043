"""Read positions: kept by the store, announced to a room's members, coalesced.

``markRead`` moves the user's position forward in the store (shared by all their tabs);
when it moved, a control message (``c|{"op":"read","room":..,"user":..,"seq":..}``)
tells every node following the room. Each node gathers the positions that moved and
sends its local connections at most one ``read`` frame per room every ``INTERVAL``
seconds (``{"t":"read","room":..,"reads":{user: seq}}``): a thousand readers in a
busy room make one frame a second per connection, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from . import channels, protocol
from .store import Store

__all__ = ["INTERVAL", "Receipts"]

INTERVAL: Final = 1.0


class _Room:
    __slots__ = ("last_sent", "pending", "seen", "timer")

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.seen: dict[str, int] = {}  # the highest position announced per user
        self.last_sent = float("-inf")
        self.timer: asyncio.TimerHandle | None = None


class Receipts:
    """This node's read-position traffic (see the module docstring)."""

    def __init__(self, store: Store, publish: Callable[[str, str], Awaitable[None]],
                 broadcast: Callable[[str, str], None]) -> None:
        self._store = store
        self._publish = publish
        self._broadcast = broadcast
        self._rooms: dict[str, _Room] = {}

    async def mark(self, user: str, room: str, seq: int) -> int:
        """Move ``user``'s read position in ``room`` to ``seq`` (the caller has capped it
        at the room's last entry); returns the position now."""
        position = await self._store.mark_read(user, room, seq)
        if position == seq:
            await self._publish(channels.room_channel(room),
                                channels.control("read", room=room, user=user, seq=seq))
        return position

    def changed(self, change: dict[str, Any]) -> None:
        """A ``read`` control message from a followed room's channel."""
        room, user, seq = change.get("room"), change.get("user"), change.get("seq")
        if not isinstance(room, str) or not isinstance(user, str) or not isinstance(seq, int):
            return
        state = self._rooms.get(room)
        if state is None:
            return
        if seq <= max(state.seen.get(user, 0), state.pending.get(user, 0)):
            return
        state.pending[user] = seq
        if state.timer is None:
            loop = asyncio.get_running_loop()
            at = max(loop.time(), state.last_sent + INTERVAL)
            state.timer = loop.call_at(at, self._flush, room)

    def follow(self, room: str) -> None:
        self._rooms.setdefault(room, _Room())

    def unfollow(self, room: str) -> None:
        state = self._rooms.pop(room, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def resumed(self) -> None:
        """Read positions announced while the broker was away are in the store: clients
        get them in the room info when they join again; nothing to repair live."""

    def stop(self) -> None:
        for room in list(self._rooms):
            self.unfollow(room)

    def _flush(self, room: str) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        state.timer = None
        state.last_sent = asyncio.get_running_loop().time()
        reads, state.pending = state.pending, {}
        state.seen.update(reads)
        self._broadcast(room, protocol.frame("read", {"room": room, "reads": reads}))
