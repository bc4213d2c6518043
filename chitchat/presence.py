"""Who is in each room: per user (all of a user's tabs are one member), with a grace period.

Two layers:

- A ``PresenceBackend`` holds the truth for the whole chat: which users are in which
  room, on which nodes. Every change that makes a user appear in or vanish from a room
  gets the room's next *presence version* and is announced on the room's channel
  (``c|{"op":"presence","room":..,"v":..,"joined"|"left":[user]}``). The in-memory
  backend serves one process; a shared one (Redis) serves many, and keeps its entries
  alive with a time to live so that a node that dies without cleaning up loses its
  users after a bounded time.
- ``Presence`` is this node's side: it counts the node's connections per room and user,
  tells the backend when a user's first connection here enters a room and when the last
  one has been gone for ``grace`` seconds (a reload or a short blip makes no
  ``left``/``joined`` pair), keeps a replica of the members of the rooms the node follows
  (applied in version order; a version skipped means a lost message: the replica is read
  again), and sends the changes to the room's local connections, coalesced: at most one
  ``presence`` frame per room every ``interval`` seconds, carrying for each user that
  changed the state they ended in. Rooms of more than ``limit`` members have no member
  lists: join answers carry ``members: null`` and no ``presence`` frames are sent (one
  list per join would make a reconnect storm into such a room quadratic).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import channels, protocol
from ._tasks import spawn

__all__ = ["MemoryPresence", "Presence", "PresenceBackend"]

log = logging.getLogger("chitchat.presence")

Publish = Callable[[str, str], Awaitable[None]]
Key = tuple[str, str]  # (room, user id)


class PresenceBackend(abc.ABC):
    """The chat-wide record of room members (see the module docstring)."""

    @abc.abstractmethod
    async def start(self, publish: Publish, node: str) -> None:
        """Called once by the Chat: ``publish(channel, payload)`` goes through its broker
        (a backend may publish by itself instead, atomically with the change);
        ``node`` is this process's id."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources; called once, when the Chat stops."""

    @abc.abstractmethod
    async def add(self, room: str, user: str) -> None:
        """This node has a connection of ``user`` in ``room`` (announce it if the user
        was not in the room on any node)."""

    @abc.abstractmethod
    async def remove(self, room: str, user: str) -> None:
        """This node has no connection of ``user`` in ``room`` any more (announce it if
        the user is now in the room on no node)."""

    @abc.abstractmethod
    async def members(self, room: str) -> tuple[list[str], int]:
        """The room's members and the presence version they are at."""

    async def members_upto(self, room: str, limit: int) -> tuple[list[str] | None, int]:
        """``members``, but None instead of a list of more than ``limit`` (a join into
        a big room gets no member list). This default reads them all; a backend that
        can count first should, so that a storm of joins into one big room does not
        copy its member list once per join."""
        found, version = await self.members(room)
        return (found if len(found) <= limit else None), version

    def members_now(self, room: str) -> list[str] | None:
        """The room's members if this backend knows them without asking anyone (the
        in-memory one does), else None."""
        return None

    def rooms_now(self, user: str) -> list[str] | None:
        """The rooms ``user`` is in, if known without asking anyone, else None."""
        return None


class MemoryPresence(PresenceBackend):
    """Presence for one process: a dictionary."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, None]] = {}
        self._versions: dict[str, int] = {}  # kept for rooms that emptied: never reused
        self._publish: Publish | None = None

    async def start(self, publish: Publish, node: str) -> None:
        self._publish = publish

    async def add(self, room: str, user: str) -> None:
        members = self._rooms.setdefault(room, {})
        if user not in members:
            members[user] = None
            await self._announce(room, joined=[user])

    async def remove(self, room: str, user: str) -> None:
        members = self._rooms.get(room)
        if members is not None and user in members:
            del members[user]
            if not members:
                del self._rooms[room]
            await self._announce(room, left=[user])

    async def members(self, room: str) -> tuple[list[str], int]:
        return list(self._rooms.get(room, ())), self._versions.get(room, 0)

    async def members_upto(self, room: str, limit: int) -> tuple[list[str] | None, int]:
        found = self._rooms.get(room, {})
        return (list(found) if len(found) <= limit else None), self._versions.get(room, 0)

    def members_now(self, room: str) -> list[str]:
        return sorted(self._rooms.get(room, ()))

    def rooms_now(self, user: str) -> list[str]:
        return sorted(room for room, members in self._rooms.items() if user in members)

    async def _announce(self, room: str, **change: list[str]) -> None:
        version = self._versions[room] = self._versions.get(room, 0) + 1
        assert self._publish is not None
        await self._publish(channels.room_channel(room),
                            channels.control("presence", room=room, v=version, **change))


class _Replica:
    __slots__ = ("changes", "members", "queue", "timer", "version")

    def __init__(self) -> None:
        self.members: dict[str, None] = {}
        self.version = -1  # not read yet
        self.queue: list[dict[str, Any]] | None = []  # changes before the first read
        # user -> (present, version of that change), since the last frame
        self.changes: dict[str, tuple[bool, int]] = {}
        self.timer: asyncio.TimerHandle | None = None


class Presence:
    """This node's presence bookkeeping (see the module docstring)."""

    def __init__(self, backend: PresenceBackend, grace: float, interval: float, limit: int,
                 broadcast: Callable[[str, Callable[[int], str | None], int], None]) -> None:
        self.backend = backend
        self.grace = grace
        self.interval = interval
        self.limit = limit
        # (room, frame for a member list of version v, newest version) -> the room's feed
        self._broadcast = broadcast
        self._local: dict[Key, int] = {}  # connections here per (room, user)
        self._leaving: dict[Key, asyncio.TimerHandle] = {}  # in their grace period
        self._replicas: dict[str, _Replica] = {}

    # -- this node's connections --------------------------------------------------------

    def enter(self, room: str, user: str) -> Awaitable[None] | None:
        """A connection of ``user`` entered ``room``; returns the backend call to await
        when this is the user's first connection in the room on this node."""
        key = (room, user)
        count = self._local.get(key, 0) + 1
        self._local[key] = count
        if count > 1:
            return None
        leaving = self._leaving.pop(key, None)
        if leaving is not None:  # back within the grace period: nothing happened
            leaving.cancel()
            return None
        return self.backend.add(room, user)

    def exit(self, room: str, user: str, at_once: bool = False) -> None:
        """A connection of ``user`` left ``room`` (``at_once``: no grace period)."""
        key = (room, user)
        count = self._local.get(key, 0) - 1
        if count > 0:
            self._local[key] = count
            return
        self._local.pop(key, None)
        leaving = self._leaving.pop(key, None)
        if leaving is not None:
            leaving.cancel()
        if at_once or self.grace <= 0:
            self._gone(key)
        else:
            self._leaving[key] = asyncio.get_running_loop().call_later(
                self.grace, self._gone, key)

    def _gone(self, key: Key) -> None:
        self._leaving.pop(key, None)
        if key not in self._local:
            spawn(self.backend.remove(*key), f"presence: {key[1]!r} leaving {key[0]!r}")

    def stop(self) -> None:
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        for replica in self._replicas.values():
            if replica.timer is not None:
                replica.timer.cancel()
        self._replicas.clear()

    # -- the replicas of followed rooms -------------------------------------------------

    def follow(self, room: str) -> None:
        """This node now follows ``room`` (a Feed for it exists): keep its members."""
        if room not in self._replicas:
            self._replicas[room] = _Replica()
            spawn(self._reload(room), f"presence: reading the members of {room!r}")

    def unfollow(self, room: str) -> None:
        replica = self._replicas.pop(room, None)
        if replica is not None and replica.timer is not None:
            replica.timer.cancel()

    def resumed(self) -> None:
        """The broker reconnected: presence changes may have been lost (a version skip
        would show only at the room's next change): read every followed room again."""
        for room, replica in self._replicas.items():
            if replica.queue is None:  # not being read already
                replica.queue = []
                spawn(self._reload(room), f"presence: re-reading {room!r} after a reconnect")

    def members(self, room: str) -> list[str] | None:
        """The members of ``room`` as this node knows them without asking (None when it
        cannot tell: a shared backend, and a room this node does not follow)."""
        known = self.backend.members_now(room)
        if known is not None:
            return known
        replica = self._replicas.get(room)
        return sorted(replica.members) if replica is not None and replica.version >= 0 else None

    def changed(self, change: dict[str, Any]) -> None:
        """A ``presence`` control message from the room's channel."""
        replica = self._replicas.get(change.get("room", ""))
        if replica is None:
            return
        if replica.queue is not None:
            replica.queue.append(change)
            return
        version = change.get("v", 0)
        if version <= replica.version:
            return
        if version != replica.version + 1:  # a change was lost: read the truth again
            log.info("presence of %r skipped from version %d to %d: reading it again",
                     change["room"], replica.version, version)
            replica.queue = [change]
            spawn(self._reload(change["room"]), "presence: re-reading members")
            return
        self._apply(change["room"], replica, change)

    async def _reload(self, room: str) -> None:
        try:
            members, version = await self.backend.members(room)
        except Exception:
            # Not stuck queueing forever: changes apply again, and the next version
            # skip (or reconnect) reads the members again.
            replica = self._replicas.get(room)
            if replica is not None:
                replica.queue = None
            raise
        replica = self._replicas.get(room)
        if replica is None:
            return
        old, replica.members = replica.members, dict.fromkeys(members)
        if replica.version >= 0:  # a re-read: tell listeners what differs
            for user in old.keys() - replica.members.keys():
                self._note(room, replica, user, False)
            for user in replica.members.keys() - old.keys():
                self._note(room, replica, user, True)
        replica.version = version
        queued, replica.queue = replica.queue or [], None
        for change in sorted(queued, key=lambda c: c.get("v", 0)):
            if change.get("v", 0) == replica.version + 1:
                self._apply(room, replica, change)

    def _apply(self, room: str, replica: _Replica, change: dict[str, Any]) -> None:
        replica.version = change["v"]
        for user in change.get("joined", ()):
            replica.members[user] = None
            self._note(room, replica, user, True)
        for user in change.get("left", ()):
            replica.members.pop(user, None)
            self._note(room, replica, user, False)

    def _note(self, room: str, replica: _Replica, user: str, present: bool) -> None:
        replica.changes[user] = (present, replica.version)
        if replica.timer is None:
            replica.timer = asyncio.get_running_loop().call_later(
                self.interval, self._flush, room)

    def _flush(self, room: str) -> None:
        replica = self._replicas.get(room)
        if replica is None:
            return
        replica.timer = None
        changes, replica.changes = replica.changes, {}
        if len(replica.members) > self.limit:  # a room too big for member lists
            return
        first = min(version for _, version in changes.values())
        built: dict[int, str | None] = {}

        def frame_for(seen: int) -> str | None:
            # A connection whose member list is of version ``seen`` needs the changes
            # after it: for all but those that joined during this batch, all of them.
            seen = max(seen, first - 1)
            if seen not in built:
                joined = sorted(u for u, (p, v) in changes.items() if p and v > seen)
                left = sorted(u for u, (p, v) in changes.items() if not p and v > seen)
                built[seen] = protocol.frame(
                    "presence", {"room": room, "joined": joined, "left": left},
                ) if joined or left else None
            return built[seen]

        self._broadcast(room, frame_for, replica.version)
