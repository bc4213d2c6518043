"""The store contract: where rooms' logs, read positions and send keys are kept.

One ``Store`` serves a whole chat (every process of it, for a shared store). What it
guarantees, and what tests/test_store_contract.py checks for every implementation:

- **The log.** ``append`` gives a message the next ``seq`` of its room (no gaps, one
  order, also when several processes append at once) and returns once the message is
  durable for that store; ``edit``/``remove``/``react`` change a message and append an
  entry recording the change, atomically. Reads (``read_after``, ``recent``) return the
  *current* state: a message as last edited and with its reactions now; a removed
  message is gone (its ``remove`` entry stays); an ``edit``/``reactions`` entry is
  composed from the message as it is now. Each read comes with the room's ``Position``
  from the same snapshot, so a reader knows exactly what it has covered.
- **Epochs.** A room's log gets a random epoch when the store first creates it; the
  epoch changes only if the log is reset or lost (a new database, a flushed Redis).
- **Send keys.** ``append`` with a ``key`` (the client's ``cid``) stores the message
  once per user and key: a second append with the same user and key returns the
  original message with ``duplicate=True`` and appends nothing. Keys are kept at least
  ``dedup_window`` seconds (``trim``).
- **Read positions** per user and room only move forward.
- **Retention**: ``trim`` deletes entries past the count and/or age limits (never the
  room's newest entry's position: seqs go on from where they were).

Errors from the underlying system are raised as ``BackendError``. Every method is a
coroutine; an implementation must never block the event loop on disk or network.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection
from typing import Any

from .errors import ChitchatError
from .log import Draft, Entry, Position
from .user import Message

__all__ = ["Appended", "Change", "ReadState", "Retention", "Store", "TooManyReactions"]


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How much of each room's log is kept: at most ``count`` entries (None: no limit)
    and none older than ``age`` seconds (None: no limit)."""

    count: int | None = 10_000
    age: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Appended:
    """What ``append`` did: ``message`` as stored; ``duplicate`` when the key had
    already been used (then ``message`` is the original and nothing was appended)."""

    message: Message
    duplicate: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """An edit, removal or change of reactions: the log ``entry`` that records it and
    the ``message`` after it (before it, for a removal)."""

    entry: Entry
    message: Message


@dataclasses.dataclass(frozen=True, slots=True)
class ReadState:
    """A user's reading of one room: their position, the messages after it that others
    sent, and the room's highest read positions (up to the number asked for)."""

    last_read: int
    unread: int
    reads: dict[str, int]


class TooManyReactions(ChitchatError):
    """``react`` would give a message more distinct emoji than allowed."""


class Store(abc.ABC):
    """Keeps every room's log, read positions and send keys (see the module docstring)."""

    #: True for a store whose appends are answered over a pipe or the network: a
    #: connection then begins its next send while the previous one's append is under
    #: way (``Session``), so that a burst shares the store's round trips and commits.
    #: The appends of one connection must then be stored in the order they were
    #: called (each call issued before it first waits). False: one at a time.
    remote = False

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open files or connections; called once, before any other method."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release resources; called once, when the Chat stops."""

    # -- the log ------------------------------------------------------------------------

    @abc.abstractmethod
    async def append(self, room: str, draft: Draft, key: str | None = None) -> Appended:
        """Add ``draft`` as the newest message of ``room`` (see "Send keys" for ``key``)."""

    @abc.abstractmethod
    async def edit(self, room: str, message_id: str, data: Any, data_json: str,
                   edited: int) -> Change | None:
        """Replace a message's data (``data_json`` is it encoded); None if not found."""

    @abc.abstractmethod
    async def remove(self, room: str, message_id: str) -> Change | None:
        """Delete a message's content from the log; None if not found."""

    @abc.abstractmethod
    async def react(self, room: str, message_id: str, user: str, emoji: str,
                    max_emoji: int) -> Change | None:
        """Toggle ``user``'s ``emoji`` on a message; None if not found. Raises
        ``TooManyReactions`` instead of adding a new emoji past ``max_emoji``."""

    @abc.abstractmethod
    async def get(self, room: str, message_id: str) -> Message | None:
        """The message as it is now, or None (never was, removed, or past retention)."""

    @abc.abstractmethod
    async def find(self, user: str, key: str) -> Message | None:
        """The message ``user`` appended with ``key`` (as it is now), or None."""

    @abc.abstractmethod
    async def position(self, room: str) -> Position:
        """Where ``room``'s log stands (creating it, with a fresh epoch, if it is new)."""

    @abc.abstractmethod
    async def read_after(self, room: str, after: int, limit: int) -> tuple[Position, list[Entry]]:
        """Up to ``limit`` entries with ``seq > after``, oldest first (current state;
        removed messages left out), with the position of the same snapshot."""

    @abc.abstractmethod
    async def recent(self, room: str, limit: int,
                     before: int | None = None) -> tuple[Position, list[Message]]:
        """The newest ``limit`` messages with ``seq < before`` (or of all), oldest first,
        current state, removed ones left out; with the position of the same snapshot."""

    # -- read positions -----------------------------------------------------------------

    @abc.abstractmethod
    async def mark_read(self, user: str, room: str, seq: int) -> int:
        """Move ``user``'s read position in ``room`` forward to ``seq``; returns the
        position now (never lower than before)."""

    @abc.abstractmethod
    async def read_state(self, user: str, room: str, readers: int) -> ReadState:
        """``user``'s position in ``room``, unread count, and the ``readers`` highest
        positions of the room's readers."""

    @abc.abstractmethod
    async def unread(self, user: str, rooms: Collection[str]) -> dict[str, int]:
        """Unread counts (messages from others after the user's read position) for
        ``rooms`` and every room where ``user`` has a read position."""

    # -- retention ----------------------------------------------------------------------

    @abc.abstractmethod
    async def trim(self, retention: Retention, dedup_window: float, now: float) -> None:
        """Delete entries past ``retention`` and send keys older than ``dedup_window``
        seconds (``now``: the current time, in seconds since the Unix epoch)."""
