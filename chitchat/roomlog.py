"""Writing rooms' logs and reading them for clients: the requests a member makes.

Every accepted message takes one path: the application's handler -> ``jsonsafe`` (what
is kept can be delivered on every transport, now and from history) -> ``Store.append``
(the room's next seq, durable) -> the broker (the room's channel) -> each node's
``Feed`` -> the room's connections. Edits, removals and reactions take the same path as
entries of their own. A request is answered only after its entry is stored: an ``ack``
means the change is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

from . import channels, jsonsafe, protocol
from .errors import BackendError
from .handlers import INTERNAL, UNSET, MessageAnswer, Registry, RemoveAnswer, run_handler
from .log import Draft
from .node import Node
from .protocol import LIMITS, Code
from .receipts import Receipts
from .rooms import Member
from .settings import Settings
from .store import Appended, Change, TooManyReactions
from .typing_indicator import Typing
from .user import Message

#: What finishes a send begun (``RoomLog.begin_send``).
Finish = Coroutine[Any, Any, None]

__all__ = ["Outage", "RoomLog", "now_ms"]

log = logging.getLogger("chitchat")

UNAVAILABLE = {"error": "unavailable"}
NOT_FOUND = {"error": "not_found"}
FORBIDDEN = {"error": "forbidden"}
TOO_MANY_REACTIONS = {"error": "too_many_reactions"}


def now_ms() -> int:
    return int(time.time() * 1000)


class Outage:
    """Logs a backend failure once per outage, not once per request."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, exc: BaseException, what: str) -> None:
        if not self.down:
            self.down = True
            log.error("the store or broker failed (%s): requests are refused with "
                      '{"error": "unavailable"} until it is back', what, exc_info=exc)

    def ok(self) -> None:
        if self.down:
            self.down = False
            log.warning("the store and broker answer again")


class RoomLog:
    """The log requests of members, and ``publish`` for server code."""

    def __init__(self, node: Node, typing: Typing, receipts: Receipts, settings: Settings,
                 registry: Registry) -> None:
        self._node = node
        self._store = node.store
        self._typing = typing
        self._receipts = receipts
        self._settings = settings
        self._registry = registry
        self.outage = Outage()

    # -- writing ------------------------------------------------------------------------

    async def post(self, room: str, user: str | None, data: Any, data_json: str,
                   key: str | None = None) -> Message:
        """Store and deliver one message (already checked): the one path of them all."""
        draft = Draft(self._node.next_id(), user, data, data_json, now_ms())
        return await self._posted(room, user, await self._store.append(room, draft, key))

    async def _posted(self, room: str, user: str | None, appended: Appended) -> Message:
        """What follows a stored message: its entry published, its author not typing."""
        message = appended.message
        if not appended.duplicate:
            assert message.seq is not None
            await self._announce(room, message.seq, message.raw, True)
            if user is not None:
                await self._typing.sent(room, user)
        return message

    async def _announce(self, room: str, seq: int, text: str, message: bool) -> None:
        """Publish a stored entry. If the broker fails now, the entry is kept anyway and
        every node finds it when the broker is back (``Feed.catch_up``)."""
        try:
            await self._node.publish(channels.room_channel(room),
                                     channels.entry(seq, text, message))
        except BackendError as exc:
            self.outage.failed(exc, "publishing a stored entry")

    async def send(self, member: Member, frame: protocol.Send) -> None:
        """Handle a ``send`` frame and answer it."""
        checked = await self._checked_send(member, frame)
        if checked is not None:
            await self._finish_send(member, frame.ref, checked[0], checked[1],
                                    self._store.append(checked[0], checked[1], frame.cid))

    async def begin_send(self, member: Member, frame: protocol.Send) -> Finish | None:
        """``send`` up to its append, begun and not awaited (for a ``remote`` store):
        returns what finishes it (awaits the append, publishes the entry, sends the
        ack), which the caller must await, or None when the frame has been answered
        already (refused, or a ``cid`` sent before).

        A session begins its next send before this one is finished: the appends of its
        consecutive sends go to the store together. The order holds because the store
        keeps the order in which appends were begun, the session finishes them in that
        order, and it begins a send only after the previous one's handler answered."""
        checked = await self._checked_send(member, frame)
        if checked is None:
            return None
        room, draft = checked
        appending = asyncio.ensure_future(self._store.append(room, draft, frame.cid))
        return self._finish_send(member, frame.ref, room, draft, appending)

    async def _checked_send(self, member: Member,
                            frame: protocol.Send) -> tuple[str, Draft] | None:
        """The room and the message of a send ready to append, or None when the frame
        has been answered: refused, or a ``cid`` sent before (answered again)."""
        assert member.user is not None
        user = member.user
        room = frame.room or self._settings.default_room
        if room is None:
            member.send(protocol.error(Code.BAD_ROOM, "name a room: this chat has no "
                                       "default room", frame.ref))
            return None
        if member.rooms.get(room) is not True:
            member.send(_not_joined(room, frame.ref))
            return None
        if frame.cid is not None:
            original = await self._store.find(user.id, frame.cid)
            if original is not None:  # sent before the connection dropped: answered again
                member.send(protocol.ack(frame.ref, msg=original.raw))
                return None
        extra = {"room": room} if self._registry.message_takes_room else {}
        accepted = await self._accepted(member, frame.ref, self._registry.message,
                                        (user, frame.data), frame.data, "message handler",
                                        **extra)
        if accepted is None:
            return None
        return room, Draft(self._node.next_id(), user.id, *accepted, now_ms())

    async def _finish_send(self, member: Member, ref: int, room: str, draft: Draft,
                           appending: Awaitable[Appended]) -> None:
        message = await self._posted(room, draft.user, await appending)
        member.send(protocol.ack(ref, msg=message.raw))

    async def edit(self, member: Member, frame: protocol.Edit) -> None:
        assert member.user is not None
        message = await self._target(member, frame.room, frame.id, frame.ref)
        if message is None:
            return
        handler = self._registry.edit
        if handler is None and message.user != member.user.id:
            member.send(protocol.nack(frame.ref, FORBIDDEN))
            return
        accepted = await self._accepted(member, frame.ref, handler,
                                        (member.user, message, frame.data), frame.data,
                                        "edit handler")
        if accepted is None:
            return
        change = await self._store.edit(frame.room, frame.id, *accepted, now_ms())
        if await self._changed(member, frame.ref, change):
            assert change is not None
            member.send(protocol.ack(frame.ref, msg=change.message.raw))

    async def remove(self, member: Member, frame: protocol.Remove) -> None:
        assert member.user is not None
        message = await self._target(member, frame.room, frame.id, frame.ref)
        if message is None:
            return
        handler = self._registry.remove
        if handler is None:
            if message.user != member.user.id:
                member.send(protocol.nack(frame.ref, FORBIDDEN))
                return
        else:
            ok, meta = await run_handler(handler, (member.user, message),
                                         RemoveAnswer("remove handler"),
                                         self._settings.handler_timeout)
            if not ok:
                member.send(protocol.nack(frame.ref, meta))
                return
        change = await self._store.remove(frame.room, frame.id)
        if await self._changed(member, frame.ref, change):
            member.send(protocol.ack(frame.ref, {"room": frame.room, "id": frame.id}))

    async def react(self, member: Member, frame: protocol.React) -> None:
        assert member.user is not None
        if member.rooms.get(frame.room) is not True:
            member.send(_not_joined(frame.room, frame.ref))
            return
        try:
            change = await self._store.react(frame.room, frame.id, member.user.id,
                                             frame.emoji, LIMITS["REACTIONS"])
        except TooManyReactions:
            member.send(protocol.nack(frame.ref, TOO_MANY_REACTIONS))
            return
        if await self._changed(member, frame.ref, change):
            assert change is not None
            member.send(protocol.ack(frame.ref, {"room": frame.room, "id": frame.id,
                                                 "reactions": change.message.reactions}))

    async def _target(self, member: Member, room: str, message_id: str,
                      ref: int) -> Message | None:
        if member.rooms.get(room) is not True:
            member.send(_not_joined(room, ref))
            return None
        message = await self._store.get(room, message_id)
        if message is None:
            member.send(protocol.nack(ref, NOT_FOUND))
        return message

    async def _changed(self, member: Member, ref: int, change: Change | None) -> bool:
        if change is None:
            member.send(protocol.nack(ref, NOT_FOUND))
            return False
        entry = change.entry
        assert change.message.room is not None
        await self._announce(change.message.room, entry.seq, entry.text, entry.message)
        return True

    async def _accepted(self, member: Member, ref: int, handler: Any, args: tuple[Any, ...],
                        data: Any, what: str, **extra: Any) -> tuple[Any, str] | None:
        """Ask ``handler`` (None: accept as sent) about ``data``; returns what to store
        and its JSON, or None once the request has been answered with a refusal: the
        handler's ``bad(meta)``, or ``internal`` for a payload that cannot be delivered
        (logged once)."""
        if handler is not None:
            ok, value = await run_handler(handler, args, MessageAnswer(what),
                                          self._settings.handler_timeout, **extra)
            if not ok:
                member.send(protocol.nack(ref, value))
                return None
            if value is not UNSET:
                data = value
        try:
            return data, jsonsafe.dumps(data, self._settings.max_depth)
        except (TypeError, ValueError) as exc:
            log.error("the %s gave good() a payload that cannot be delivered: %s", what, exc)
            member.send(protocol.nack(ref, INTERNAL))
            return None

    # -- reading ------------------------------------------------------------------------

    async def history(self, member: Member, frame: protocol.History) -> None:
        if member.rooms.get(frame.room) is not True:
            member.send(_not_joined(frame.room, frame.ref))
            return
        _, messages = await self._store.recent(frame.room, frame.limit, frame.before)
        member.send(protocol.ack(frame.ref, {"room": frame.room},
                                 list="[" + ",".join(m.raw for m in messages) + "]"))

    async def read(self, member: Member, frame: protocol.Read) -> None:
        assert member.user is not None
        feed = self._node.feeds.get(frame.room)
        if member.rooms.get(frame.room) is not True or feed is None:
            member.send(_not_joined(frame.room, frame.ref))
            return
        seq = await self._receipts.mark(member.user.id, frame.room,
                                        min(frame.seq, feed.position))
        member.send(protocol.ack(frame.ref, {"room": frame.room, "seq": seq}))

    async def typing(self, member: Member, frame: protocol.Typing) -> None:
        assert member.user is not None
        if member.rooms.get(frame.room) is not True:
            member.send(_not_joined(frame.room, None))
            return
        await self._typing.typed(frame.room, member.user.id)


def _not_joined(room: str, ref: int | None) -> str:
    return protocol.error(Code.NOT_JOINED, f"this connection is not in room {room[:40]!r}", ref)
