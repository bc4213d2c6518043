"""The values the chat core passes around: who is talking, and what they said."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Message", "User"]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """An authorized user, as the authorize handler named it with ``good(id, meta)``.

    Several connections (tabs, devices) may share one ``id``. Users compare and hash
    by ``id`` alone; ``meta`` is whatever the authorize handler attached.
    """

    id: str
    meta: Any = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One message of a room's log (or a push), exactly as clients receive it.

    ``room`` and ``seq`` (its position in the room's log) are None for a push, ``user``
    for a message server code published without one. ``edited`` is the time (ms) of the
    last edit, ``reactions`` maps each emoji to the users who reacted with it, in order.

    ``raw`` is its JSON text, encoded once when the message (or its latest change) is
    made and then shared by the store, the broker and every receiver: a message is never
    re-encoded per receiver.
    """

    id: str
    room: str | None
    seq: int | None
    user: str | None
    data: Any
    ts: int
    raw: str = dataclasses.field(repr=False, compare=False)
    edited: int | None = None
    reactions: dict[str, list[str]] = dataclasses.field(default_factory=dict, compare=False)
