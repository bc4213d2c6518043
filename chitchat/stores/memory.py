"""The in-process store: every room's log in memory, bounded, lost on restart.

A restart starts every room on a new epoch, so reconnecting clients are told their
history is gone (a ``reset``) rather than silently missing what came before.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import heapq
import secrets
import time
from collections.abc import Collection
from typing import Any

from .. import log
from ..errors import ConfigurationError
from ..log import Draft, Entry, Position
from ..store import Appended, Change, ReadState, Retention, Store, TooManyReactions
from ..user import Message

__all__ = ["MemoryStore"]

# Kinds of log records: a message, or a change to the message whose id they hold.
_EDIT, _REMOVE, _REACTIONS = "edit", "remove", "reactions"


@dataclasses.dataclass(slots=True)
class _Record:
    ts: float  # seconds since the Unix epoch, for retention by age
    message: Message | None = None  # a message (None once removed) ...
    change: str = ""  # ... or the kind of change to ``target``
    target: str = ""


class _Room:
    __slots__ = ("epoch", "first", "ids", "last", "log", "own", "reads", "seqs")

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        self.first = 1
        self.last = 0
        self.log: dict[int, _Record] = {}  # seq -> record, first .. last
        self.ids: dict[str, int] = {}  # message id -> its seq (messages not removed)
        self.reads: dict[str, int] = {}  # user -> read position
        # The seqs of the messages kept (not removed), ascending, in all and per author:
        # unread counts are two bisections, not a walk through the log.
        self.seqs: list[int] = []
        self.own: dict[str | None, list[int]] = {}

    def position(self) -> Position:
        return Position(self.epoch, self.first, self.last)

    def message(self, message_id: str) -> Message | None:
        seq = self.ids.get(message_id)
        return None if seq is None else self.log[seq].message

    def add(self, record: _Record) -> int:
        self.last += 1
        self.log[self.last] = record
        return self.last

    def keep(self, message: Message) -> None:
        assert message.seq is not None
        self.ids[message.id] = message.seq
        self.seqs.append(message.seq)
        self.own.setdefault(message.user, []).append(message.seq)

    def forget(self, message: Message) -> None:
        assert message.seq is not None
        self.ids.pop(message.id, None)
        for seqs in (self.seqs, self.own.get(message.user, [])):
            at = bisect.bisect_left(seqs, message.seq)
            if at < len(seqs) and seqs[at] == message.seq:
                del seqs[at]

    def unread(self, user: str, after: int) -> int:
        own = self.own.get(user, [])
        return (len(self.seqs) - bisect.bisect_right(self.seqs, after)
                - (len(own) - bisect.bisect_right(own, after)))

    def drop_before(self, seq: int) -> None:
        while self.first < seq and self.first <= self.last:
            record = self.log.pop(self.first)
            if record.message is not None:
                self.forget(record.message)
            self.first += 1


class MemoryStore(Store):
    """Keeps the newest ``capacity`` entries of each room in memory (and whatever the
    Chat's ``retention`` trims further)."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ConfigurationError("MemoryStore capacity must be at least 1")
        self._capacity = capacity
        self._rooms: dict[str, _Room] = {}
        # user -> key -> (room, message id, time): the send keys, oldest first.
        self._keys: dict[str, collections.OrderedDict[str, tuple[str, str, float]]] = {}

    def _room(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        return state

    async def close(self) -> None:
        self._rooms.clear()
        self._keys.clear()

    # -- the log ------------------------------------------------------------------------

    async def append(self, room: str, draft: Draft, key: str | None = None) -> Appended:
        if key is not None and draft.user is not None:
            original = await self.find(draft.user, key)
            if original is not None:
                return Appended(original, duplicate=True)
        state = self._room(room)
        message = draft.message(room, state.last + 1)
        state.add(_Record(time.time(), message))
        state.keep(message)
        if key is not None and draft.user is not None:
            keys = self._keys.setdefault(draft.user, collections.OrderedDict())
            keys[key] = (room, message.id, time.time())
        state.drop_before(state.last + 1 - self._capacity)
        return Appended(message)

    async def edit(self, room: str, message_id: str, data: Any, data_json: str,
                   edited: int) -> Change | None:
        return self._change(room, message_id, _EDIT,
                            lambda m: log.changed(m, data=data, data_json=data_json,
                                                  edited=edited))

    async def remove(self, room: str, message_id: str) -> Change | None:
        return self._change(room, message_id, _REMOVE, lambda m: None)

    async def react(self, room: str, message_id: str, user: str, emoji: str,
                    max_emoji: int) -> Change | None:
        def toggle(message: Message) -> Message:
            return log.changed(message, reactions=toggled(message.reactions, user, emoji,
                                                          max_emoji))
        return self._change(room, message_id, _REACTIONS, toggle)

    def _change(self, room: str, message_id: str, kind: str, apply: Any) -> Change | None:
        state = self._rooms.get(room)
        message = state.message(message_id) if state else None
        if state is None or message is None:
            return None
        assert message.seq is not None
        after: Message | None = apply(message)  # may raise TooManyReactions
        state.log[message.seq].message = after
        if after is None:
            state.forget(message)
        seq = state.add(_Record(time.time(), change=kind, target=message_id))
        return Change(_entry(room, seq, kind, message_id, after), after or message)

    async def get(self, room: str, message_id: str) -> Message | None:
        state = self._rooms.get(room)
        return state.message(message_id) if state else None

    async def find(self, user: str, key: str) -> Message | None:
        keys = self._keys.get(user)
        found = keys.get(key) if keys is not None else None
        return None if found is None else await self.get(found[0], found[1])

    async def position(self, room: str) -> Position:
        return self._room(room).position()

    async def read_after(self, room: str, after: int, limit: int) -> tuple[Position, list[Entry]]:
        state = self._room(room)
        entries: list[Entry] = []
        for seq in range(max(after + 1, state.first), state.last + 1):
            record = state.log[seq]
            if record.change:
                target = state.message(record.target)
                if target is not None or record.change == _REMOVE:
                    entries.append(_entry(room, seq, record.change, record.target, target))
            elif record.message is not None:
                entries.append(Entry(seq, record.message.raw, True))
            if len(entries) >= limit:
                break
        return state.position(), entries

    async def recent(self, room: str, limit: int,
                     before: int | None = None) -> tuple[Position, list[Message]]:
        state = self._room(room)
        found: list[Message] = []
        seq = min(state.last, before - 1 if before is not None else state.last)
        while seq >= state.first and len(found) < limit:
            message = state.log[seq].message
            if message is not None:
                found.append(message)
            seq -= 1
        found.reverse()
        return state.position(), found

    # -- read positions -----------------------------------------------------------------

    async def mark_read(self, user: str, room: str, seq: int) -> int:
        reads = self._room(room).reads
        reads[user] = max(reads.get(user, 0), seq)
        return reads[user]

    async def read_state(self, user: str, room: str, readers: int) -> ReadState:
        state = self._room(room)
        last_read = state.reads.get(user, 0)
        top = heapq.nlargest(readers, state.reads.items(), key=lambda item: item[1])
        return ReadState(last_read, state.unread(user, last_read), dict(top))

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, int]:
        names = set(rooms) | {name for name, s in self._rooms.items() if user in s.reads}
        return {name: self._room(name).unread(user, self._room(name).reads.get(user, 0))
                for name in sorted(names)}

    # -- retention ----------------------------------------------------------------------

    async def trim(self, retention: Retention, dedup_window: float, now: float) -> None:
        for state in self._rooms.values():
            first = state.first
            if retention.count is not None:
                first = max(first, state.last + 1 - retention.count)
            if retention.age is not None:
                while first <= state.last and state.log[first].ts < now - retention.age:
                    first += 1
            state.drop_before(first)
        for user, keys in list(self._keys.items()):
            while keys and next(iter(keys.values()))[2] < now - dedup_window:
                keys.popitem(last=False)
            if not keys:
                del self._keys[user]


def toggled(reactions: dict[str, list[str]], user: str, emoji: str,
            max_emoji: int) -> dict[str, list[str]]:
    """``reactions`` with ``user``'s ``emoji`` toggled (a new dict; emoji without users
    are dropped). Shared by the stores that compute reactions in Python."""
    result = {name: list(users) for name, users in reactions.items()}
    users = result.get(emoji)
    if users is None:
        if len(result) >= max_emoji:
            raise TooManyReactions(f"a message carries at most {max_emoji} distinct emoji")
        result[emoji] = [user]
    elif user in users:
        users.remove(user)
        if not users:
            del result[emoji]
    else:
        users.append(user)
    return result


def _entry(room: str, seq: int, kind: str, message_id: str, message: Message | None) -> Entry:
    """The entry recording a change, composed from the message as it is now."""
    if kind == _REMOVE or message is None:
        return Entry(seq, log.remove_frame(room, seq, message_id), False)
    if kind == _EDIT:
        return Entry(seq, log.edit_frame(room, seq, message), False)
    return Entry(seq, log.reactions_frame(room, seq, message.id, message.reactions), False)
