"""The embedded persistent store: every room's log in one SQLite file.

``SQLiteStore(path)`` keeps what ``MemoryStore`` keeps, on disk: a restart on the same
file keeps every room's epoch and seqs, so reconnecting clients recover what they
missed instead of getting a ``reset``. A helper process owns the connection and commits
requests in groups (``_sqlite_child``); ``append`` returns once its transaction is
committed (WAL, ``synchronous=FULL``: on disk, fsynced). The schema and the operations
are in ``_sqlite_ops``; this module turns their plain answers into chitchat's values.

Why a process and not a thread: a thread that calls sqlite3 must take the GIL back
after every statement, and a busy event loop, releasing and retaking it around each
socket call, keeps winning it (CPython's "convoy effect"): under load the thread got a
few statements through per second (docs/design.md, "SQLite store").
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from .. import log
from ..errors import ConfigurationError
from ..log import Draft, Entry, Position
from ..store import Appended, Change, ReadState, Retention, Store
from ..user import Message
from ._sqlite_channel import Channel
from ._sqlite_ops import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteStore(Store):
    """Keeps every room's log, read positions and send keys in the SQLite file ``path``
    (created if missing). ``synchronous`` is SQLite's setting: ``"FULL"`` (the default)
    makes every acknowledged write survive a power loss; ``"NORMAL"`` only a crash of
    the process. Retention is the Chat's ``retention`` (``trim``), nothing else.

    A message id is unique among a room's messages (a second live message with the
    same id in one room is refused with ``BackendError``); chitchat's ids always are.
    """

    remote = True  # answered by the helper process, in the order asked

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = os.fspath(path)
        self._db = Channel(self.path, synchronous.upper())

    @property
    def commits(self) -> int:
        """Transactions committed so far (fewer than writes: they are grouped)."""
        return self._db.commits

    @property
    def pid(self) -> int | None:
        """The process id of the helper process that owns the database."""
        return self._db.pid

    async def start(self) -> None:
        await self._db.start()

    async def close(self) -> None:
        await self._db.close()

    # -- the log ------------------------------------------------------------------------

    async def append(self, room: str, draft: Draft, key: str | None = None) -> Appended:
        found = await self._db.call("append", room, draft.id, draft.user, draft.data_json,
                                    draft.ts, key)
        if isinstance(found, str):  # the original's JSON
            return Appended(log.message_from_json(found), duplicate=True)
        return Appended(draft.message(room, found))

    async def edit(self, room: str, message_id: str, data: Any, data_json: str,
                   edited: int) -> Change | None:
        return _change(await self._db.call("edit", room, message_id, data_json, edited))

    async def remove(self, room: str, message_id: str) -> Change | None:
        return _change(await self._db.call("remove", room, message_id))

    async def react(self, room: str, message_id: str, user: str, emoji: str,
                    max_emoji: int) -> Change | None:
        return _change(await self._db.call("react", room, message_id, user, emoji, max_emoji))

    async def get(self, room: str, message_id: str) -> Message | None:
        return _message(await self._db.call("get", room, message_id))

    async def find(self, user: str, key: str) -> Message | None:
        return _message(await self._db.call("find", user, key))

    async def position(self, room: str) -> Position:
        return Position(*await self._db.call("position", room))

    async def read_after(self, room: str, after: int, limit: int) -> tuple[Position, list[Entry]]:
        position, entries = await self._db.call("read_after", room, after, limit)
        return Position(*position), [Entry(*entry) for entry in entries]

    async def recent(self, room: str, limit: int,
                     before: int | None = None) -> tuple[Position, list[Message]]:
        position, found = await self._db.call("recent", room, limit, before)
        return Position(*position), [log.message_from_json(raw) for raw in found]

    # -- read positions -----------------------------------------------------------------

    async def mark_read(self, user: str, room: str, seq: int) -> int:
        now: int = await self._db.call("mark_read", user, room, seq)
        return now

    async def read_state(self, user: str, room: str, readers: int) -> ReadState:
        last_read, unread, reads = await self._db.call("read_state", user, room, readers)
        return ReadState(last_read, unread, dict(reads))

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, int]:
        counts: dict[str, int] = await self._db.call("unread", user, sorted(set(rooms)))
        return counts

    # -- retention ----------------------------------------------------------------------

    async def trim(self, retention: Retention, dedup_window: float, now: float) -> None:
        # In steps, each one request among the others: appends are not held up for long.
        after: int | None = 0
        while after is not None:
            after = await self._db.call("trim_rooms", retention.count, retention.age, now,
                                        after)
        while await self._db.call("trim_keys", now - dedup_window):
            pass


def _message(raw: str | None) -> Message | None:
    return None if raw is None else log.message_from_json(raw)


def _change(found: tuple[int, str, str] | None) -> Change | None:
    if found is None:
        return None
    seq, text, raw = found
    return Change(Entry(seq, text, False), log.message_from_json(raw))
