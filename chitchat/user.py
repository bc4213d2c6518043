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
    """One accepted chat message or push, exactly as clients receive it.

    ``raw`` is its JSON text, encoded once when the message is made and then shared by
    the store, the broker and every receiver: a message is never re-encoded per receiver.
    """

    id: str
    user: str | None
    data: Any
    ts: int
    raw: str = dataclasses.field(repr=False, compare=False)
