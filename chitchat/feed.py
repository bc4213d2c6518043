"""One room's local fan-out on this node: the room's log entries in ``seq`` order.

The broker hands every entry published to a room's channel to the room's ``Feed`` on
each node that has a connection in the room. The feed delivers them to those
connections in ``seq`` order, with no gap and no duplicate, whatever the broker did:

- an entry it has already passed (``seq <= position``) is dropped;
- an entry that comes early (another process published its entry first, or the broker
  lost one while reconnecting) waits ``GAP_WAIT`` seconds for the ones before it, then
  the feed reads what is missing from the store, which has every entry before it is
  published.

Entries that arrive in the same event-loop turn are coalesced: the turn's consecutive
messages become ONE ``messages`` frame, built once and handed to every listener.

A connection joining the room is *held*: the feed keeps what arrives for it while its
history is read, then ``release`` sends it what came after that history, and from then
on it gets every frame like the others. Node-local frames (presence, typing, read
positions) are sent with ``broadcast`` to the listeners that are not held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from . import protocol
from ._tasks import spawn
from .store import Store

__all__ = ["Feed", "Listener", "frames"]

log = logging.getLogger("chitchat.feed")

#: Seconds an early entry waits for the ones before it before the store is asked.
GAP_WAIT = 0.05
#: Entries read from the store at a time when filling a gap.
FILL_CHUNK = 500
#: Messages per ``messages`` frame when many are sent at once (history, recovery).
FRAME_MESSAGES = 200

Item = tuple[int, bool, str]  # (seq, is a message, JSON text of the message or frame)


class Listener(Protocol):
    def deliver(self, frame: str) -> None:
        """Take one frame; must not raise."""


def frames(items: Iterable[Item]) -> list[str]:
    """The frames that carry ``items`` in order: runs of messages in ``messages``
    frames (at most FRAME_MESSAGES each), other entries as the frames they are."""
    out: list[str] = []
    run: list[str] = []
    for _, message, text in items:
        if message:
            run.append(text)
            if len(run) >= FRAME_MESSAGES:
                out.append(protocol.messages(run))
                run = []
            continue
        if run:
            out.append(protocol.messages(run))
            run = []
        out.append(text)
    if run:
        out.append(protocol.messages(run))
    return out


class Feed:
    """The fan-out of one room on this node (see the module docstring)."""

    __slots__ = (
        "_ahead", "_early", "_fill", "_floors", "_scheduled", "_store", "_turn", "epoch",
        "holding", "open", "position", "reserved", "room",
    )

    def __init__(self, room: str, store: Store) -> None:
        self.room = room
        self._store = store
        #: The seq of the last entry handed to the listeners, in the log of ``epoch``.
        self.position = 0
        self.epoch = ""
        #: Listeners receiving frames -> the presence version of their snapshot.
        self.open: dict[Listener, int] = {}
        #: Listeners being synced -> what arrived for them meanwhile.
        self.holding: dict[Listener, list[Item]] = {}
        #: Joins on their way in (the feed must not be dropped under them).
        self.reserved = 0
        self._early: list[Item] | None = []  # entries before ``start``
        self._turn: list[Item] = []
        self._scheduled = False
        self._ahead: dict[int, tuple[bool, str]] = {}
        #: Open listeners whose history went past ``position`` -> the seq it covers.
        self._floors: dict[Listener, int] = {}
        self._fill: asyncio.TimerHandle | asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self, epoch: str, position: int) -> None:
        """The node now receives the room's channel, and the store's log stood at
        ``position`` after that: entries up to it are covered by what joiners read."""
        self.epoch = epoch
        self.position = position
        early, self._early = self._early or [], None
        for item in early:
            self._take(*item)

    @property
    def idle(self) -> bool:
        return not self.open and not self.holding and not self.reserved

    def stop(self) -> None:
        if self._fill is not None:
            self._fill.cancel()
            self._fill = None
        self.open.clear()
        self.holding.clear()
        self._floors.clear()

    # -- listeners ----------------------------------------------------------------------

    def hold(self, listener: Listener) -> None:
        self.holding[listener] = []

    def release(self, listener: Listener, after: int, version: int) -> None:
        """Send ``listener`` what arrived for it after ``after`` (the seq its history
        covers) and from now on every frame; ``version`` is the presence version of the
        member list it was given."""
        self._flush()  # this turn's entries go through the holding filter below
        held = self.holding.pop(listener, None)
        if held is None:
            return
        for frame in frames(item for item in held if item[0] > after):
            listener.deliver(frame)
        self.open[listener] = version
        if after > self.position:
            # Its history holds entries stored but not published to this node yet (a
            # send's publish follows its append; another process's comes later still):
            # when they come, it must not get them twice.
            self._floors[listener] = after

    def drop(self, listener: Listener) -> None:
        self.open.pop(listener, None)
        self.holding.pop(listener, None)
        self._floors.pop(listener, None)

    def broadcast(self, frame: str) -> None:
        """Send a node-local frame to every listener that is not held."""
        for listener in list(self.open):
            listener.deliver(frame)

    def broadcast_since(self, frame_for: Callable[[int], str | None], version: int) -> None:
        """Send presence news: each listener whose member list is older than ``version``
        gets ``frame_for(its list's version)`` (None: nothing new for it)."""
        for listener, seen in list(self.open.items()):
            if seen < version and (frame := frame_for(seen)) is not None:
                listener.deliver(frame)

    # -- entries ------------------------------------------------------------------------

    def receive(self, seq: int, message: bool, text: str) -> None:
        """One entry of the room's log, from the broker."""
        if self._early is not None:
            self._early.append((seq, message, text))
        else:
            self._take(seq, message, text)

    def _take(self, seq: int, message: bool, text: str) -> None:
        if seq <= self.position:
            return
        if seq != self.position + 1:
            self._ahead[seq] = (message, text)
            if self._fill is None:
                self._fill = asyncio.get_running_loop().call_later(GAP_WAIT, self._start_fill)
            return
        self._queue(seq, message, text)
        self._take_ahead()

    def _take_ahead(self) -> None:
        while (nxt := self._ahead.pop(self.position + 1, None)) is not None:
            self._queue(self.position + 1, *nxt)
        for seq in [s for s in self._ahead if s <= self.position]:
            del self._ahead[seq]
        if not self._ahead and isinstance(self._fill, asyncio.TimerHandle):
            self._fill.cancel()
            self._fill = None

    def _queue(self, seq: int, message: bool, text: str) -> None:
        self.position = seq
        self._turn.append((seq, message, text))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._turn:
            return
        items, self._turn = self._turn, []
        if self._floors:
            self._flush_floored(items)
        elif self.open:
            for frame in frames(items):
                # Copy: a listener whose write fails may leave the room mid-loop.
                for listener in list(self.open):
                    listener.deliver(frame)
        for held in self.holding.values():
            held.extend(items)

    def _flush_floored(self, items: list[Item]) -> None:
        """``_flush`` while some listeners already have entries up to their floor."""
        floors = self._floors
        everyone = [listener for listener in self.open if listener not in floors]
        for frame in frames(items):
            for listener in everyone:
                listener.deliver(frame)
        for listener, floor in list(floors.items()):
            if listener not in self.open:
                del floors[listener]
                continue
            for frame in frames(item for item in items if item[0] > floor):
                listener.deliver(frame)
            if floor <= self.position:
                del floors[listener]

    # -- filling a gap from the store ---------------------------------------------------

    def catch_up(self) -> None:
        """Read the store for entries this node may have missed (the broker lost its
        connection for a while)."""
        if not isinstance(self._fill, asyncio.Task):
            if self._fill is not None:
                self._fill.cancel()
            self._start_fill()

    def _start_fill(self) -> None:
        self._fill = spawn(self._fill_gap(), f"filling a gap in room {self.room!r}")

    async def _fill_gap(self) -> None:
        try:
            first = True
            while first or self._ahead:
                first = False
                if self._ahead:
                    log.info("room %r: entries after %d came out of order or were lost; "
                             "reading them from the store", self.room, self.position)
                position, entries = await self._store.read_after(
                    self.room, self.position, FILL_CHUNK)
                for entry in entries:
                    if entry.seq > self.position:
                        self._queue(entry.seq, entry.message, entry.text)
                if len(entries) < FILL_CHUNK:
                    # The read covers everything up to position.last: what it left out
                    # (removed messages) is not missing.
                    self.position = max(self.position, position.last)
                self._take_ahead()
                if self._ahead and min(self._ahead) != self.position + 1:
                    await asyncio.sleep(GAP_WAIT)
        finally:
            self._fill = None
