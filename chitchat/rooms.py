"""Room membership: joining (history or recovery), leaving, and server-made moves.

A connection is in a room from ``enter`` to ``exit``. Entering follows the room on this
node (its ``Feed``), holds the connection's live entries, tells presence, and reads the
room from the store: the missed entries when the client's ``since`` position can be
recovered (same epoch, not older than what the store keeps, at most ``recovery_limit``
entries behind), else a ``reset`` (if it gave a position) and the recent history. The
caller sends the room info and those frames in the order its flow needs, then
``release`` lets the held entries through: the client sees the room's log with no gap
and no duplicate.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import protocol
from ._tasks import spawn
from .feed import FILL_CHUNK, frames
from .handlers import JoinAnswer, Registry, run_handler
from .node import Node
from .presence import Presence
from .protocol import Since
from .settings import Settings
from .user import User

__all__ = ["Entered", "Member", "Rooms"]

log = logging.getLogger("chitchat.rooms")

#: How many of a room's highest read positions a room info carries.
READERS = 50


class Member(Protocol):
    """What Rooms needs of a connection (a ``Session``)."""

    user: User | None
    #: The rooms it is in -> True once registered (held by the feed, counted by
    #: presence), False while entering.
    rooms: dict[str, bool]

    @property
    def gone(self) -> bool: ...
    def deliver(self, frame: str) -> None: ...
    def send(self, frame: str) -> None: ...


@dataclasses.dataclass(slots=True)
class Entered:
    """A connection entered ``room``: send ``info`` (the room info fields) and
    ``frames`` (a ``reset``, the history or the missed entries), then ``release``."""

    room: str
    info: dict[str, Any]
    frames: list[str]
    seq: int
    version: int


class Rooms:
    """Moves connections in and out of rooms (see the module docstring)."""

    def __init__(self, node: Node, presence: Presence, settings: Settings,
                 registry: Registry, sessions_of: Callable[[str], Iterable[Member]]) -> None:
        self._node = node
        self._store = node.store
        self._presence = presence
        self._settings = settings
        self._registry = registry
        self._sessions_of = sessions_of
        node.on("add", self._added)
        node.on("remove", self._removed)

    # -- the flow -----------------------------------------------------------------------

    async def enter(self, member: Member, room: str, since: Since | None,
                    meta: Any = None) -> Entered | None:
        """Put ``member`` in ``room``; None if it went away (or left) meanwhile."""
        assert member.user is not None
        user = member.user.id
        member.rooms[room] = False
        try:
            feed = await self._node.follow(room)
        except BaseException:
            if member.rooms.get(room) is False:
                del member.rooms[room]
            raise
        feed.reserved -= 1
        if member.gone or member.rooms.get(room) is not False:
            self._node.unfollow_if_idle(room)
            return None
        feed.hold(member)
        member.rooms[room] = True
        try:
            return await self._sync(member, user, room, since, meta)
        except BaseException:
            self.exit(member, room, at_once=True)
            raise

    async def _sync(self, member: Member, user: str, room: str, since: Since | None,
                    meta: Any) -> Entered | None:
        if self._settings.presence:
            announcing = self._presence.enter(room, user)
            if announcing is not None:
                await announcing
        sent, seq, epoch = await self._read(room, since)
        state = await self._store.read_state(user, room, READERS)
        members: list[str] | None = None
        version = 0
        if self._settings.presence:
            # A member list per join is O(members): past the limit (a reconnect storm
            # into one big room would be quadratic) the room carries none, and the
            # in-memory backend does not even copy it.
            found, version = await self._presence.backend.members_upto(
                room, self._settings.presence_limit)
            members = sorted(found) if found is not None else None
        if member.gone or member.rooms.get(room) is not True:
            return None
        info = {"room": room, "meta": meta, "epoch": epoch, "seq": seq, "members": members,
                "unread": state.unread, "lastRead": state.last_read, "reads": state.reads}
        return Entered(room, info, sent, seq, version)

    def release(self, member: Member, entered: Entered) -> None:
        feed = self._node.feeds.get(entered.room)
        if feed is not None and member.rooms.get(entered.room) is True:
            feed.release(member, entered.seq, entered.version)

    def exit(self, member: Member, room: str, at_once: bool = False) -> bool:
        """Take ``member`` out of ``room``; False if it was not in it."""
        registered = member.rooms.pop(room, None)
        if registered is None:
            return False
        if registered:
            feed = self._node.feeds.get(room)
            if feed is not None:
                feed.drop(member)
            if self._settings.presence and member.user is not None:
                self._presence.exit(room, member.user.id, at_once)
            self._node.unfollow_if_idle(room)
        return True

    def exit_all(self, member: Member) -> None:
        for room in list(member.rooms):
            self.exit(member, room)

    async def _read(self, room: str, since: Since | None) -> tuple[list[str], int, str]:
        """The frames a joining client gets, and the seq and epoch they cover."""
        store = self._store
        sent: list[str] = []
        if since is not None:
            position = await store.position(room)
            if (since.epoch == position.epoch
                    and position.first - 1 <= since.seq <= position.last
                    and position.last - since.seq <= self._settings.recovery_limit):
                items: list[tuple[int, bool, str]] = []
                after = since.seq
                while True:
                    position, entries = await store.read_after(room, after, FILL_CHUNK)
                    items.extend((e.seq, e.message, e.text) for e in entries)
                    if len(entries) < FILL_CHUNK:
                        return frames(items), position.last, position.epoch
                    after = entries[-1].seq
            sent.append(protocol.frame("reset", {"room": room, "epoch": position.epoch}))
        position, messages = await store.recent(room, self._settings.history)
        sent.extend(frames((m.seq or 0, True, m.raw) for m in messages))
        return sent, position.last, position.epoch

    # -- a client's join and leave ------------------------------------------------------

    async def join(self, member: Member, frame: protocol.Join) -> None:
        assert member.user is not None
        if frame.room in member.rooms:  # joined again: start over (no presence blip)
            self.exit(member, frame.room)
        meta = None
        handler = self._registry.join
        if handler is not None:
            ok, meta = await run_handler(handler, (member.user, frame.room, frame.data),
                                         JoinAnswer("join handler"),
                                         self._settings.handler_timeout)
            if not ok:
                member.send(protocol.nack(frame.ref, meta))
                return
        entered = await self.enter(member, frame.room, frame.since, meta)
        if entered is None:
            return
        for text in entered.frames:
            member.send(text)
        member.send(protocol.ack(frame.ref, entered.info))
        self.release(member, entered)

    async def leave(self, member: Member, frame: protocol.Leave) -> None:
        self.exit(member, frame.room)
        member.send(protocol.ack(frame.ref, {"room": frame.room}))

    # -- chat.add / chat.remove, on every node ------------------------------------------

    def _added(self, channel: str, message: dict[str, Any]) -> None:
        room, user = message.get("room"), channel[2:]
        if not isinstance(room, str):
            return
        for member in list(self._sessions_of(user)):
            if room not in member.rooms:
                spawn(self._add(member, room), f"adding {user!r} to {room!r}")

    async def _add(self, member: Member, room: str) -> None:
        entered = await self.enter(member, room, None)
        if entered is None:
            return
        member.send(protocol.frame("joined", entered.info))
        for text in entered.frames:
            member.send(text)
        self.release(member, entered)

    def _removed(self, channel: str, message: dict[str, Any]) -> None:
        room, user = message.get("room"), channel[2:]
        if not isinstance(room, str):
            return
        for member in list(self._sessions_of(user)):
            if self.exit(member, room, at_once=True):
                member.send(protocol.frame("removed", {"room": room}))
