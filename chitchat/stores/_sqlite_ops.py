"""SQLiteStore's database: the schema and every operation, as run by its helper process.

Each operation is a function of the connection, called inside the batch's transaction
(``_sqlite_child``), that returns plain values (strings, numbers, tuples): the event
loop's side (``sqlite.py``) builds the ``Message``/``Entry`` objects. Seqs are assigned
here from the ``rooms`` row, inside the operation's savepoint: nothing about the log
lives outside the database, so a failed operation or transaction leaves no hole, and
several processes may share one file (``BEGIN IMMEDIATE`` serializes their writers).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from .. import log
from ..errors import ConfigurationError
from ..log import Draft
from ..user import Message
from .memory import toggled

__all__ = ["BY_ID", "GROUPED", "OPS", "READS", "SCHEMA_VERSION", "UNREAD", "open_database"]

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
        # Every entry of every room. id is (room << 36) + seq: a room's log is one run of
        # the table, read and trimmed as a range. A message holds its JSON as it is now
        # (raw) and is live until removed (then its content is erased: raw and user
        # NULL; the seq stays); a change names its message by id and by seq (target).
        # shown: read_after gives it (a live message, a change of a live message, a
        # removal). ts: seconds, for retention by age.
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY, room INTEGER NOT NULL, seq INTEGER NOT NULL,
            ts REAL NOT NULL, kind INTEGER NOT NULL, live INTEGER NOT NULL,
            shown INTEGER NOT NULL, message_id TEXT NOT NULL, user TEXT, raw TEXT,
            target INTEGER)""",
        # get/edit/remove/react by id (UNIQUE also tells the planner it finds one row;
        # the id first: chitchat's ids grow, so a commit dirties few of its pages);
        # unread counts (covering: no row is read); a removal hides earlier changes.
        "CREATE UNIQUE INDEX entries_by_id ON entries (message_id, room) WHERE live = 1",
        "CREATE INDEX live_messages ON entries (room, live, seq, user) WHERE live = 1",
        "CREATE INDEX changes ON entries (room, target) WHERE target IS NOT NULL",
        """CREATE TABLE reads (
            room INTEGER NOT NULL, user TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (room, user)) WITHOUT ROWID""",
        "CREATE INDEX reads_by_seq ON reads (room, seq)",
        "CREATE INDEX reads_by_user ON reads (user)",
        """CREATE TABLE send_keys (
            user TEXT NOT NULL, key TEXT NOT NULL, entry INTEGER NOT NULL,
            ts REAL NOT NULL, PRIMARY KEY (user, key))""",
        "CREATE INDEX send_keys_by_ts ON send_keys (ts)",
    ),
)
#: The schema version this chitchat writes.
SCHEMA_VERSION = len(_MIGRATIONS)
#: RETURNING (3.35) is used; older SQLite libraries are refused at start.
MIN_SQLITE = (3, 35, 0)

#: Rows deleted per step of ``trim``: each step is one operation among the others, so
#: a large sweep never holds the writer (and the appends queued behind it) for long.
TRIM_STEP = 2000
#: An entry's id is ``(room << SEQ_BITS) + seq``: 2**36 entries per room, 2**27 rooms.
SEQ_BITS = 36
_ROOMS = 2**(63 - SEQ_BITS)


def _key(room_id: int, seq: int) -> int:
    return (room_id << SEQ_BITS) + seq

#: The queries whose index matters most (tests/test_sqlite_store.py checks their plans).
BY_ID = ("SELECT e.room, e.seq, e.raw FROM rooms r JOIN entries e ON e.room = r.id "
         "WHERE r.name = ? AND e.message_id = ? AND e.live = 1")
UNREAD = "SELECT count(*) FROM entries WHERE room = ? AND live = 1 AND seq > ? AND user IS NOT ?"

Position = tuple[str, int, int]  # epoch, first, last
_Room = tuple[int, str, int, int]  # id, epoch, first, last


def open_database(path: str, synchronous: str) -> sqlite3.Connection:
    """The connection, in WAL mode, at ``SCHEMA_VERSION`` (ConfigurationError if the
    file is not chitchat's, or of a newer schema)."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise ConfigurationError(f"SQLiteStore needs SQLite {'.'.join(map(str, MIN_SQLITE))} "
                                 f"or newer; Python's sqlite3 has {sqlite3.sqlite_version}")
    connection = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    try:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise ConfigurationError(f"{path}: SQLite refused WAL mode ({mode})")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA busy_timeout = 5000")
        # Checkpoint every 10,000 pages (SQLite's default: 1,000): the pages a burst of
        # commits rewrites again and again are copied to the database once, not every
        # few commits (measured: 58 -> 45 us of CPU per append over 100 rooms); the WAL
        # file is cut back to 64 MiB after.
        connection.execute("PRAGMA wal_autocheckpoint = 10000")
        connection.execute("PRAGMA journal_size_limit = 67108864")
        # What is removed, edited over or trimmed is overwritten, not left in free
        # space: a removed message's content is gone from the file.
        connection.execute("PRAGMA secure_delete = ON")
        _migrate(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


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


# -- rooms ------------------------------------------------------------------------------


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
        if cursor.lastrowid >= _ROOMS:
            raise sqlite3.DataError(f"a SQLite store keeps at most {_ROOMS - 1} rooms")
        row = (cursor.lastrowid, epoch, 1, 0)
    return row


def _next_seq(connection: sqlite3.Connection, room_id: int) -> int:
    seq: int = connection.execute("UPDATE rooms SET last = last + 1 WHERE id = ? RETURNING last",
                                  (room_id,)).fetchone()[0]
    return seq


# -- the log ----------------------------------------------------------------------------

Append = tuple[str, str, "str | None", str, int, "str | None"]  # room, id, user, data_json, ts, key


def append_many(connection: sqlite3.Connection, calls: list[Append]) -> list[int | str]:
    """Consecutive appends, in order: for each, its seq, or the original's JSON when its
    user and key were used before (a duplicate: nothing appended)."""
    rooms = _rooms_of(connection, {call[0] for call in calls})  # name -> [id, last]
    fresh: dict[tuple[str, str], str] = {}  # keys used by this call -> the JSON
    rows: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    results: list[int | str] = []
    now = time.time()
    for room, message_id, user, data_json, ts, key in calls:
        if key is not None and user is not None:
            original = fresh.get((user, key)) or _find_raw(connection, user, key)
            if original is not None:
                results.append(original)
                continue
        state = rooms.get(room)
        if state is None:
            found = _room_made(connection, room)
            state = rooms[room] = [found[0], found[3]]
        state[1] += 1
        draft = Draft(message_id, user, None, data_json, ts)
        raw = draft.head(room) + str(state[1]) + draft.tail()
        entry = _key(state[0], state[1])
        rows.append((entry, state[0], state[1], now, message_id, user, raw))
        if key is not None and user is not None:
            keys.append((user, key, entry, now))
            fresh[user, key] = raw
        results.append(state[1])
    if any(last >= 2**SEQ_BITS for _, last in rooms.values()):
        raise sqlite3.DataError(f"a room's log in a SQLite store ends at {2**SEQ_BITS - 1}")
    connection.executemany(
        "INSERT INTO entries (id, room, seq, ts, kind, live, shown, message_id, user, raw) "
        "VALUES (?, ?, ?, ?, 0, 1, 1, ?, ?, ?)", rows)
    connection.executemany("UPDATE rooms SET last = ? WHERE id = ?",
                           [(last, room_id) for room_id, last in rooms.values()])
    connection.executemany(
        "INSERT INTO send_keys (user, key, entry, ts) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user, key) DO UPDATE SET entry = excluded.entry, ts = excluded.ts", keys)
    return results


def _rooms_of(connection: sqlite3.Connection, names: set[str]) -> dict[str, list[int]]:
    """[id, last] of the rooms among ``names`` that exist, in one query per 500."""
    found: dict[str, list[int]] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        for name, room_id, last in connection.execute(
                f"SELECT name, id, last FROM rooms WHERE name IN ({','.join('?' * len(chunk))})",
                chunk):
            found[name] = [room_id, last]
    return found


def append(connection: sqlite3.Connection, *call: Any) -> int | str:
    return append_many(connection, [call])[0]


def _live(connection: sqlite3.Connection, room: str,
          message_id: str) -> tuple[int, int, str] | None:
    """(room id, seq, JSON) of a message that is there (not removed, not trimmed)."""
    row: tuple[int, int, str] | None = connection.execute(BY_ID, (room, message_id)).fetchone()
    return row


Changed = tuple[int, str, str]  # the entry's seq and text; the message's JSON after it


def _change(connection: sqlite3.Connection, room: str, message_id: str, kind: int,
            apply: Callable[[Message], Message | None]) -> Changed | None:
    found = _live(connection, room, message_id)
    if found is None:
        return None
    room_id, target, raw = found
    message = log.message_from_json(raw)
    after = apply(message)  # may raise TooManyReactions (before anything is written)
    if after is None:  # removed: erase the content, keep the seq; hide its changes
        connection.execute("UPDATE entries SET live = 0, shown = 0, raw = NULL, user = NULL "
                           "WHERE id = ?", (_key(room_id, target),))
        connection.execute("UPDATE entries SET shown = 0 WHERE room = ? AND target = ?",
                           (room_id, target))
    else:
        connection.execute("UPDATE entries SET raw = ? WHERE id = ?",
                           (after.raw, _key(room_id, target)))
    seq = _next_seq(connection, room_id)
    connection.execute(
        "INSERT INTO entries (id, room, seq, ts, kind, live, shown, message_id, target) "
        "VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)",
        (_key(room_id, seq), room_id, seq, time.time(), kind, message_id, target))
    return seq, _change_text(room, seq, kind, message_id, after), (after or message).raw


def edit(connection: sqlite3.Connection, room: str, message_id: str, data_json: str,
         edited: int) -> Changed | None:
    return _change(connection, room, message_id, _EDIT,
                   lambda m: log.changed(m, data=None, data_json=data_json, edited=edited))


def remove(connection: sqlite3.Connection, room: str, message_id: str) -> Changed | None:
    """The removal's entry and the message's JSON as it was."""
    return _change(connection, room, message_id, _REMOVE, lambda m: None)


def react(connection: sqlite3.Connection, room: str, message_id: str, user: str, emoji: str,
          max_emoji: int) -> Changed | None:
    return _change(connection, room, message_id, _REACTIONS, lambda m: log.changed(
        m, reactions=toggled(m.reactions, user, emoji, max_emoji)))


def _change_text(room: str, seq: int, kind: int, message_id: str,
                 message: Message | None) -> str:
    """The frame of an entry recording a change, composed from the message as it is now."""
    if kind == _REMOVE or message is None:
        return log.remove_frame(room, seq, message_id)
    if kind == _EDIT:
        return log.edit_frame(room, seq, message)
    return log.reactions_frame(room, seq, message_id, message.reactions)


def get(connection: sqlite3.Connection, room: str, message_id: str) -> str | None:
    found = _live(connection, room, message_id)
    return None if found is None else found[2]


def _find_raw(connection: sqlite3.Connection, user: str, key: str) -> str | None:
    row = connection.execute(
        "SELECT e.raw FROM send_keys k JOIN entries e ON e.id = k.entry "
        "WHERE k.user = ? AND k.key = ? AND e.live = 1", (user, key)).fetchone()
    return None if row is None else str(row[0])


def find(connection: sqlite3.Connection, user: str, key: str) -> str | None:
    return _find_raw(connection, user, key)


def position(connection: sqlite3.Connection, room: str) -> Position:
    _, epoch, first, last = _room_made(connection, room)
    return epoch, first, last


def read_after(connection: sqlite3.Connection, room: str, after: int,
               limit: int) -> tuple[Position, list[tuple[int, str, bool]]]:
    """Up to ``limit`` entries after ``after`` as (seq, text, is a message)."""
    room_id, epoch, first, last = _room_made(connection, room)
    # Removed messages are left out; a change whose message is gone (removed: not shown;
    # trimmed: before first) too, but a removal.
    rows = connection.execute(
        "SELECT seq, kind, message_id, raw, target FROM entries WHERE id > ? AND id < ? "
        "AND shown = 1 AND (kind IN (0, 2) OR target >= ?) ORDER BY id LIMIT ?",
        (_key(room_id, after), _key(room_id + 1, 0), first, limit))
    entries = [
        (seq, raw, True) if kind == _MESSAGE else (seq, _change_text(
            room, seq, kind, message_id, _target(connection, room_id, kind, target)), False)
        for seq, kind, message_id, raw, target in rows
    ]
    return (epoch, first, last), entries


def _target(connection: sqlite3.Connection, room_id: int, kind: int,
            target: int) -> Message | None:
    """The message a change entry names, as it is now (None for a removal)."""
    if kind == _REMOVE:
        return None
    row = connection.execute("SELECT raw FROM entries WHERE id = ?",
                             (_key(room_id, target),)).fetchone()
    return log.message_from_json(row[0])


def recent(connection: sqlite3.Connection, room: str, limit: int,
           before: int | None) -> tuple[Position, list[str]]:
    """The JSON of the newest ``limit`` messages before ``before``, oldest first."""
    room_id, epoch, first, last = _room_made(connection, room)
    end = last + 1 if before is None else min(before, last + 1)
    rows = connection.execute(
        "SELECT raw FROM entries WHERE id >= ? AND id < ? AND live = 1 ORDER BY id DESC LIMIT ?",
        (_key(room_id, 0), _key(room_id, max(end, 0)), limit))
    found = [raw for (raw,) in rows]
    found.reverse()
    return (epoch, first, last), found


# -- read positions ---------------------------------------------------------------------


def mark_read(connection: sqlite3.Connection, user: str, room: str, seq: int) -> int:
    room_id = _room_made(connection, room)[0]
    now: int = connection.execute(
        "INSERT INTO reads (room, user, seq) VALUES (?, ?, ?) ON CONFLICT (room, user) "
        "DO UPDATE SET seq = max(seq, excluded.seq) RETURNING seq",
        (room_id, user, seq)).fetchone()[0]
    return now


def read_state(connection: sqlite3.Connection, user: str, room: str,
               readers: int) -> tuple[int, int, list[tuple[str, int]]]:
    """The user's position, unread count, and the highest positions (user, seq)."""
    found = _room(connection, room)
    if found is None:
        return 0, 0, []
    room_id = found[0]
    row = connection.execute("SELECT seq FROM reads WHERE room = ? AND user = ?",
                             (room_id, user)).fetchone()
    last_read = row[0] if row else 0
    top = connection.execute("SELECT user, seq FROM reads WHERE room = ? "
                             "ORDER BY seq DESC, user LIMIT ?", (room_id, readers)).fetchall()
    return last_read, _unread(connection, room_id, user, last_read), top


def _unread(connection: sqlite3.Connection, room_id: int, user: str, after: int) -> int:
    """Messages from others after ``after``, counted on the ``live_messages`` index."""
    count: int = connection.execute(UNREAD, (room_id, after, user)).fetchone()[0]
    return count


def unread(connection: sqlite3.Connection, user: str, rooms: list[str]) -> dict[str, int]:
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


def trim_rooms(connection: sqlite3.Connection, count: int | None, age: float | None,
               now: float, after: int) -> int | None:
    """One step of ``trim``: rooms with ids above ``after``, until about TRIM_STEP rows
    are deleted or looked at. Returns the id to go on after, or None when all are done."""
    budget = TRIM_STEP
    rooms = connection.execute("SELECT id, first, last FROM rooms WHERE id > ? ORDER BY id "
                               "LIMIT ?", (after, TRIM_STEP)).fetchall()
    for room_id, first, last in rooms:
        end = min(last + 1, first + budget)  # this step deletes no further
        keep = first if count is None else max(first, last + 1 - count)
        if keep >= end:
            keep = end
        elif age is not None:  # the first entry young enough, if in the window
            row = connection.execute(
                "SELECT seq FROM entries WHERE id >= ? AND id < ? AND ts >= ? ORDER BY id LIMIT 1",
                (_key(room_id, keep), _key(room_id, end), now - age)).fetchone()
            keep = row[0] if row else end
        if keep > first:
            connection.execute("DELETE FROM entries WHERE id >= ? AND id < ?",
                               (_key(room_id, first), _key(room_id, keep)))
            connection.execute("UPDATE rooms SET first = ? WHERE id = ?", (keep, room_id))
        if keep == end < last + 1:  # the window is used up: this room goes on next step
            return int(room_id) - 1
        budget -= 1 + keep - first
        if budget <= 0:
            return int(room_id)
    return int(rooms[-1][0]) if len(rooms) == TRIM_STEP else None


def trim_keys(connection: sqlite3.Connection, older_than: float) -> int:
    """Delete up to TRIM_STEP send keys older than ``older_than``; how many went."""
    cursor = connection.execute(
        "DELETE FROM send_keys WHERE rowid IN (SELECT rowid FROM send_keys WHERE ts < ? "
        "LIMIT ?)", (older_than, TRIM_STEP))
    return cursor.rowcount


#: What the event loop may ask, by name.
OPS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn for fn in (append, edit, remove, react, get, find, position, read_after,
                               recent, mark_read, read_state, unread, trim_rooms, trim_keys)
}
#: Operations that never write: they run without a savepoint of their own.
READS = frozenset({"get", "find", "read_state", "unread"})
#: Consecutive requests of these run as one call of the function given (a list of
#: their arguments in, a list of results out); ``OPS`` runs them one by one if it fails.
GROUPED: dict[str, Callable[[sqlite3.Connection, list[Any]], list[Any]]] = {
    "append": append_many,
}
