"""The room log's values: positions, entries, message drafts, and their JSON.

Every room has a log. Each entry (a message, an edit, a removal, a change of reactions)
gets the next ``seq`` of its room: 1, 2, 3, ... with no gaps. The room's ``epoch``
changes when its log is reset or lost. Clients track ``(epoch, seq)`` per room and give
it back after a reconnect; stores keep the log; the broker carries new entries; each
node's ``Feed`` delivers them in ``seq`` order.

A message's JSON is built here and only here, so that every store (including Redis,
which joins the parts in a script) produces the same bytes::

    {"id":..,"room":..,"seq":..,"user":..,"data":..,"ts":..[,"edited":..][,"reactions":..]}
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .user import Message

__all__ = [
    "Draft",
    "Entry",
    "Position",
    "changed",
    "edit_frame",
    "message_from_json",
    "message_raw",
    "push_raw",
    "reactions_frame",
    "remove_frame",
]

_dump = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """Where a room's log stands: entries ``first`` .. ``last`` of ``epoch`` are kept
    (``first == last + 1`` when none is; ``last == 0`` when nothing was ever added)."""

    epoch: str
    first: int
    last: int


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One log entry as clients receive it: ``text`` is a Message's JSON when
    ``message`` is true, else a whole ``edit``/``remove``/``reactions`` frame."""

    seq: int
    text: str
    message: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Draft:
    """A message before its room's log gives it a ``seq``.

    ``data_json`` is ``data`` already encoded (and checked by ``jsonsafe``): stores join
    ``head(room) + str(seq) + tail()`` and never encode the data again.
    """

    id: str
    user: str | None
    data: Any
    data_json: str
    ts: int

    def head(self, room: str) -> str:
        return _head(self.id, room)

    def tail(self) -> str:
        return _tail(self.user, self.data_json, self.ts, None, None)

    def message(self, room: str, seq: int) -> Message:
        raw = self.head(room) + str(seq) + self.tail()
        return Message(self.id, room, seq, self.user, self.data, self.ts, raw)


def message_raw(message_id: str, room: str | None, seq: int | None, user: str | None,
                data_json: str, ts: int, edited: int | None = None,
                reactions: Mapping[str, list[str]] | None = None) -> str:
    """The JSON text of a message in a given state (see the module docstring)."""
    return _head(message_id, room) + _dump(seq) + _tail(user, data_json, ts, edited, reactions)


def _head(message_id: str, room: str | None) -> str:
    return '{"id":' + _dump(message_id) + ',"room":' + _dump(room) + ',"seq":'


def _tail(user: str | None, data_json: str, ts: int, edited: int | None,
          reactions: Mapping[str, list[str]] | None) -> str:
    text = ',"user":' + _dump(user) + ',"data":' + data_json + ',"ts":' + str(ts)
    if edited is not None:
        text += ',"edited":' + str(edited)
    if reactions:
        text += ',"reactions":' + _dump(reactions)
    return text + "}"


def changed(message: Message, *, data: Any = None, data_json: str | None = None,
            edited: int | None = None,
            reactions: Mapping[str, list[str]] | None = None) -> Message:
    """``message`` with new data (and its edit time) and/or new reactions."""
    if data_json is None:
        data, data_json = message.data, _dump(message.data)
    edited = edited if edited is not None else message.edited
    new_reactions = dict(reactions) if reactions is not None else message.reactions
    raw = message_raw(message.id, message.room, message.seq, message.user, data_json,
                      message.ts, edited, new_reactions)
    return Message(message.id, message.room, message.seq, message.user, data, message.ts,
                   raw, edited, new_reactions)


def message_from_json(raw: str) -> Message:
    """The Message whose JSON text is ``raw`` (as a store reads it back)."""
    obj = json.loads(raw)
    return Message(obj["id"], obj["room"], obj["seq"], obj["user"], obj["data"], obj["ts"],
                   raw, obj.get("edited"), obj.get("reactions") or {})


def push_raw(message_id: str, data_json: str, ts: int) -> str:
    """A push (``chat.message(user, payload)``): no room, no seq, no user."""
    return message_raw(message_id, None, None, None, data_json, ts)


def edit_frame(room: str, seq: int, message: Message) -> str:
    return '{"t":"edit","room":' + _dump(room) + ',"seq":' + str(seq) + ',"msg":' + (
        message.raw + "}")


def remove_frame(room: str, seq: int, message_id: str) -> str:
    return _dump({"t": "remove", "room": room, "seq": seq, "id": message_id})


def reactions_frame(room: str, seq: int, message_id: str,
                    reactions: Mapping[str, list[str]]) -> str:
    return _dump({"t": "reactions", "room": room, "seq": seq, "id": message_id,
                  "reactions": reactions})
