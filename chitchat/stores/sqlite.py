"""The embedded persistent store: every room's log in one SQLite file.

``SQLiteStore(path)`` keeps what ``MemoryStore`` keeps, on disk: a restart on the same
file keeps every room's epoch and seqs, so reconnecting clients recover what they
missed instead of getting a ``reset``. One worker thread owns the connection and
commits queued operations in groups (``_sqlite_worker``); ``append`` returns once its
transaction is committed (WAL, ``synchronous=FULL``: on disk, fsynced).

Everything lives in the database, nothing in Python: seqs are assigned by the writer
from the ``rooms`` row inside the same savepoint as the entry, so a failed operation or
transaction leaves no hole, and several processes may share one file (``BEGIN
IMMEDIATE`` serializes their writers).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection
from typing import Any

from .. import log
from ..errors import ConfigurationError
from ..log import Draft, Entry, Position
from ..store import Appended, Change, ReadState, Retention, Store
from ..user import Message
from ._sqlite_worker import Worker
from .memory import toggled

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

# Kinds of entries: a message, or a change to the message it names.
_MESSAGE, _EDIT, _REMOVE, _REACTIONS = 0, 1, 2, 3

#: ``_MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``
#: (``PRAGMA user_version``; 0 is a new, empty file).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # last: the room's newest seq (never goes back); first: its oldest kept one.
        """CREATE TABLE rooms (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, epoch TEXT NOT NULL,
            first INTEGER NOT NULL DEFAULT 1, last INTEGER NOT NULL DEFAULT 0)""",
        # Every entry of every room. A message holds its JSON as it is now (raw) and is
        # live until removed (then its content is erased: raw and user NULL; the seq
        # stays); a change names its message by id and by seq (target). ts: seconds,
        # for retention by age. (A rowid table: SQLite's planner passes over secondary
        # indexes of a WITHOUT ROWID table whose key starts with the same column.)
        """CREATE TABLE entries (
            room INTEGER NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
            kind INTEGER NOT NULL, live INTEGER NOT NULL, message_id TEXT NOT NULL,
            user TEXT, raw TEXT, target INTEGER, UNIQUE (room, seq))""",
        # get/edit/remove/react by id (UNIQUE also tells the planner it finds one row);
        # history; unread counts (covering: no row is read).
        "CREATE UNIQUE INDEX entries_by_id ON entries (room, message_id) WHERE live = 1",
        "CREATE INDEX live_messages ON entries (room, live, seq, user) WHERE live = 1",
        """CREATE TABLE reads (
            room INTEGER NOT NULL, user TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (room, user)) WITHOUT ROWID""",
        "CREATE INDEX reads_by_seq ON reads (room, seq)",
        "CREATE INDEX reads_by_user ON reads (user)",
        """CREATE TABLE send_keys (
            user TEXT NOT NULL, key TEXT NOT NULL, room INTEGER NOT NULL,
            seq INTEGER NOT NULL, ts REAL NOT NULL, PRIMARY KEY (user, key))""",
        "CREATE INDEX send_keys_by_ts ON send_keys (ts)",
    ),
)
#: The schema version this chitchat writes.
SCHEMA_VERSION = len(_MIGRATIONS)

#: Rows deleted per step of ``trim``: each step is one operation among the others, so
#: a large sweep never holds the writer (and the appends queued behind it) for long.
TRIM_STEP = 2000
#: The queries whose index matters most (tests/test_sqlite_store.py checks their plans).
BY_ID = ("SELECT e.room, e.seq, e.raw FROM rooms r JOIN entries e ON e.room = r.id "
         "WHERE r.name = ? AND e.message_id = ? AND e.live = 1")
UNREAD = "SELECT count(*) FROM entries WHERE room = ? AND live = 1 AND seq > ? AND user IS NOT ?"
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_NO_SEQ = 2**63 - 1


class SQLiteStore(Store):
    """Keeps every room's log, read positions and send keys in the SQLite file ``path``
    (created if missing). ``synchronous`` is SQLite's setting: ``"FULL"`` (the default)
    makes every acknowledged write survive a power loss; ``"NORMAL"`` only a crash of
    the process. Retention is the Chat's ``retention`` (``trim``), nothing else."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._worker = Worker(self.path, self._open)

    @property
    def commits(self) -> int:
        """Transactions committed so far (fewer than writes: they are grouped)."""
        return self._worker.commits

    def _open(self) -> sqlite3.Connection:
        """On the worker thread: the connection, in WAL mode, at ``SCHEMA_VERSION``."""
        connection = sqlite3.connect(self.path, isolation_level=None, cached_statements=64)
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise ConfigurationError(f"{self.path}: SQLite refused WAL mode ({mode})")
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            connection.execute("PRAGMA busy_timeout = 5000")
            # What is removed, edited over or trimmed is overwritten, not left in free
            # space: a removed message's content is gone from the file.
            connection.execute("PRAGMA secure_delete = ON")
            _migrate(connection, self.path)
        except BaseException:
            connection.close()
            raise
        return connection

    async def start(self) -> None:
        await self._worker.start()

    async def close(self) -> None:
        await self._worker.close()

    # -- the log ------------------------------------------------------------------------

    async def append(self, room: str, draft: Draft, key: str | None = None) -> Appended:
        return await self._worker.write(_append, room, draft, key)

    async def edit(self, room: str, message_id: str, data: Any, data_json: str,
                   edited: int) -> Change | None:
        return await self._worker.write(
            _change, room, message_id, _EDIT,
            lambda m: log.changed(m, data=data, data_json=data_json, edited=edited))

    async def remove(self, room: str, message_id: str) -> Change | None:
        return await self._worker.write(_change, room, message_id, _REMOVE, lambda m: None)

    async def react(self, room: str, message_id: str, user: str, emoji: str,
                    max_emoji: int) -> Change | None:
        def toggle(message: Message) -> Message:
            return log.changed(message, reactions=toggled(message.reactions, user, emoji,
                                                          max_emoji))
        return await self._worker.write(_change, room, message_id, _REACTIONS, toggle)

    async def get(self, room: str, message_id: str) -> Message | None:
        return await self._worker.read(_get, room, message_id)

    async def find(self, user: str, key: str) -> Message | None:
        return await self._worker.read(_find, user, key)

    async def position(self, room: str) -> Position:
        return await self._worker.write(_position, room)

    async def read_after(self, room: str, after: int, limit: int) -> tuple[Position, list[Entry]]:
        return await self._worker.write(_read_after, room, after, limit)

    async def recent(self, room: str, limit: int,
                     before: int | None = None) -> tuple[Position, list[Message]]:
        return await self._worker.write(_recent, room, limit, before)

    # -- read positions -----------------------------------------------------------------

    async def mark_read(self, user: str, room: str, seq: int) -> int:
        return await self._worker.write(_mark_read, user, room, seq)

    async def read_state(self, user: str, room: str, readers: int) -> ReadState:
        return await self._worker.read(_read_state, user, room, readers)

    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, int]:
        return await self._worker.read(_unread_all, user, sorted(set(rooms)))

    # -- retention ----------------------------------------------------------------------

    async def trim(self, retention: Retention, dedup_window: float, now: float) -> None:
        after: int | None = 0
        while after is not None:
            after = await self._worker.write(_trim_rooms, retention, now, after)
        while await self._worker.write(_trim_keys, now - dedup_window) >= TRIM_STEP:
            pass


# -- the operations: each runs on the worker thread, inside the batch's transaction -----

_Room = tuple[int, str, int, int]  # id, epoch, first, last


def _migrate(connection: sqlite3.Connection, path: str) -> None:
    connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{path} has chitchat schema version {version}, newer than this chitchat "
                f"knows ({SCHEMA_VERSION}): upgrade chitchat, or use another file")
        if version == 0 and connection.execute("SELECT 1 FROM sqlite_master").fetchone():
            raise ConfigurationError(f"{path} is a SQLite database, but not chitchat's "
                                     "(it has tables and no schema version)")
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _room(connection: sqlite3.Connection, name: str) -> _Room | None:
    row: _Room | None = connection.execute(
        "SELECT id, epoch, first, last FROM rooms WHERE name = ?", (name,)).fetchone()
    return row


def _room_made(connection: sqlite3.Connection, name: str) -> _Room:
    """The room's row, created with a fresh epoch if the room is new."""
    row = _room(connection, name)
    if row is None:
        epoch = secrets.token_hex(8)
        cursor = connection.execute("INSERT INTO rooms (name, epoch) VALUES (?, ?)",
                                    (name, epoch))
        assert cursor.lastrowid is not None
        row = (cursor.lastrowid, epoch, 1, 0)
    return row


def _next_seq(connection: sqlite3.Connection, room_id: int) -> int:
    seq: int = connection.execute("UPDATE rooms SET last = last + 1 WHERE id = ? RETURNING last",
                                  (room_id,)).fetchone()[0]
    return seq


def _append(connection: sqlite3.Connection, room: str, draft: Draft,
            key: str | None) -> Appended:
    user = draft.user
    if key is not None and user is not None:
        original = _find(connection, user, key)
        if original is not None:
            return Appended(original, duplicate=True)
    room_id = _room_made(connection, room)[0]
    seq = _next_seq(connection, room_id)
    message = draft.message(room, seq)
    now = time.time()
    connection.execute(
        "INSERT INTO entries (room, seq, ts, kind, live, message_id, user, raw) "
        "VALUES (?, ?, ?, 0, 1, ?, ?, ?)", (room_id, seq, now, draft.id, user, message.raw))
    if key is not None and user is not None:
        connection.execute(
            "INSERT INTO send_keys (user, key, room, seq, ts) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user, key) DO UPDATE SET room = excluded.room, "
            "seq = excluded.seq, ts = excluded.ts", (user, key, room_id, seq, now))
    return Appended(message)


def _live(connection: sqlite3.Connection, room: str,
          message_id: str) -> tuple[int, int, str] | None:
    """(room id, seq, JSON) of a message that is there (not removed, not trimmed)."""
    row: tuple[int, int, str] | None = connection.execute(BY_ID, (room, message_id)).fetchone()
    return row


def _change(connection: sqlite3.Connection, room: str, message_id: str, kind: int,
            apply: Callable[[Message], Message | None]) -> Change | None:
    found = _live(connection, room, message_id)
    if found is None:
        return None
    room_id, target, raw = found
    message = log.message_from_json(raw)
    after = apply(message)  # may raise TooManyReactions (before anything is written)
    if after is None:  # removed: erase the content, keep the seq
        connection.execute("UPDATE entries SET live = 0, raw = NULL, user = NULL "
                           "WHERE room = ? AND seq = ?", (room_id, target))
    else:
        connection.execute("UPDATE entries SET raw = ? WHERE room = ? AND seq = ?",
                           (after.raw, room_id, target))
    seq = _next_seq(connection, room_id)
    connection.execute(
        "INSERT INTO entries (room, seq, ts, kind, live, message_id, target) "
        "VALUES (?, ?, ?, ?, 0, ?, ?)", (room_id, seq, time.time(), kind, message_id, target))
    return Change(_change_entry(room, seq, kind, message_id, after), after or message)


def _change_entry(room: str, seq: int, kind: int, message_id: str,
                  message: Message | None) -> Entry:
    """The entry recording a change, composed from the message as it is now."""
    if kind == _REMOVE or message is None:
        return Entry(seq, log.remove_frame(room, seq, message_id), False)
    if kind == _EDIT:
        return Entry(seq, log.edit_frame(room, seq, message), False)
    return Entry(seq, log.reactions_frame(room, seq, message_id, message.reactions), False)


def _get(connection: sqlite3.Connection, room: str, message_id: str) -> Message | None:
    found = _live(connection, room, message_id)
    return None if found is None else log.message_from_json(found[2])


def _find(connection: sqlite3.Connection, user: str, key: str) -> Message | None:
    row = connection.execute(
        "SELECT e.raw FROM send_keys k JOIN entries e ON e.room = k.room AND e.seq = k.seq "
        "WHERE k.user = ? AND k.key = ? AND e.live = 1", (user, key)).fetchone()
    return None if row is None else log.message_from_json(row[0])


def _position(connection: sqlite3.Connection, room: str) -> Position:
    _, epoch, first, last = _room_made(connection, room)
    return Position(epoch, first, last)


def _read_after(connection: sqlite3.Connection, room: str, after: int,
                limit: int) -> tuple[Position, list[Entry]]:
    room_id, epoch, first, last = _room_made(connection, room)
    # Removed messages are left out; a change whose message is gone too, but a removal.
    rows = connection.execute(
        "SELECT e.seq, e.kind, e.message_id, e.raw, t.raw FROM entries e "
        "LEFT JOIN entries t ON t.room = e.room AND t.seq = e.target "
        "WHERE e.room = ? AND e.seq > ? AND (e.live = 1 OR e.kind = 2 OR t.live = 1) "
        "ORDER BY e.seq LIMIT ?", (room_id, after, limit))
    entries = [
        Entry(seq, raw, True) if kind == _MESSAGE else _change_entry(
            room, seq, kind, message_id, log.message_from_json(target) if target else None)
        for seq, kind, message_id, raw, target in rows
    ]
    return Position(epoch, first, last), entries


def _recent(connection: sqlite3.Connection, room: str, limit: int,
            before: int | None) -> tuple[Position, list[Message]]:
    room_id, epoch, first, last = _room_made(connection, room)
    rows = connection.execute(
        "SELECT raw FROM entries WHERE room = ? AND live = 1 AND seq < ? "
        "ORDER BY seq DESC LIMIT ?", (room_id, _NO_SEQ if before is None else before, limit))
    messages = [log.message_from_json(raw) for (raw,) in rows]
    messages.reverse()
    return Position(epoch, first, last), messages


# -- read positions ---------------------------------------------------------------------


def _mark_read(connection: sqlite3.Connection, user: str, room: str, seq: int) -> int:
    room_id = _room_made(connection, room)[0]
    now: int = connection.execute(
        "INSERT INTO reads (room, user, seq) VALUES (?, ?, ?) ON CONFLICT (room, user) "
        "DO UPDATE SET seq = max(seq, excluded.seq) RETURNING seq",
        (room_id, user, seq)).fetchone()[0]
    return now


def _read_state(connection: sqlite3.Connection, user: str, room: str,
                readers: int) -> ReadState:
    found = _room(connection, room)
    if found is None:
        return ReadState(0, 0, {})
    room_id = found[0]
    row = connection.execute("SELECT seq FROM reads WHERE room = ? AND user = ?",
                             (room_id, user)).fetchone()
    last_read = row[0] if row else 0
    top = connection.execute("SELECT user, seq FROM reads WHERE room = ? "
                             "ORDER BY seq DESC, user LIMIT ?", (room_id, readers))
    return ReadState(last_read, _unread(connection, room_id, user, last_read), dict(top))


def _unread(connection: sqlite3.Connection, room_id: int, user: str, after: int) -> int:
    """Messages from others after ``after``, counted on the ``live_messages`` index."""
    count: int = connection.execute(UNREAD, (room_id, after, user)).fetchone()[0]
    return count


def _unread_all(connection: sqlite3.Connection, user: str, rooms: list[str]) -> dict[str, int]:
    positions: dict[str, tuple[int, int]] = {
        name: (room_id, seq) for name, room_id, seq in connection.execute(
            "SELECT r.name, r.id, d.seq FROM reads d JOIN rooms r ON r.id = d.room "
            "WHERE d.user = ?", (user,))}
    for name in rooms:
        if name not in positions:
            found = _room(connection, name)
            positions[name] = (found[0] if found else 0, 0)
    return {name: _unread(connection, room_id, user, seq) if room_id else 0
            for name, (room_id, seq) in sorted(positions.items())}


# -- retention --------------------------------------------------------------------------


def _trim_rooms(connection: sqlite3.Connection, retention: Retention, now: float,
                after: int) -> int | None:
    """One step of ``trim``: rooms with ids above ``after``, until about TRIM_STEP rows
    are deleted or looked at. Returns the id to go on after, or None when all are done."""
    budget = TRIM_STEP
    rooms = connection.execute("SELECT id, first, last FROM rooms WHERE id > ? ORDER BY id "
                               "LIMIT ?", (after, TRIM_STEP)).fetchall()
    for room_id, first, last in rooms:
        end = min(last + 1, first + budget)  # this step deletes no further
        keep = first if retention.count is None else max(first, last + 1 - retention.count)
        if keep >= end:
            keep = end
        elif retention.age is not None:  # the first entry young enough, if in the window
            row = connection.execute(
                "SELECT seq FROM entries WHERE room = ? AND seq >= ? AND seq < ? AND ts >= ? "
                "ORDER BY seq LIMIT 1", (room_id, keep, end, now - retention.age)).fetchone()
            keep = row[0] if row else end
        if keep > first:
            connection.execute("DELETE FROM entries WHERE room = ? AND seq < ?", (room_id, keep))
            connection.execute("UPDATE rooms SET first = ? WHERE id = ?", (keep, room_id))
        if keep == end < last + 1:  # the window is used up: this room goes on next step
            return int(room_id) - 1
        budget -= 1 + keep - first
        if budget <= 0:
            return int(room_id)
    return int(rooms[-1][0]) if len(rooms) == TRIM_STEP else None


def _trim_keys(connection: sqlite3.Connection, older_than: float) -> int:
    """Delete up to TRIM_STEP send keys older than ``older_than``; how many went."""
    cursor = connection.execute(
        "DELETE FROM send_keys WHERE rowid IN (SELECT rowid FROM send_keys WHERE ts < ? "
        "LIMIT ?)", (older_than, TRIM_STEP))
    return cursor.rowcount
