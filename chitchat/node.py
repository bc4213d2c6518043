"""This process's place in the chat: its broker subscriptions and what arrives on them.

A ``Node`` owns the broker connection, the ``Feed`` of every room it has connections
in, and the ``Hub`` of its users' push channels. It subscribes to a room's channel
when its first connection joins the room and drops it when the last one has gone, and
routes every payload the broker delivers: room entries to the room's feed, pushes to
the hub, control messages to whoever registered for their ``op``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from . import channels
from ._tasks import spawn
from .broker import Broker
from .feed import Feed
from .hub import Hub
from .store import Store

__all__ = ["Node", "RoomWatcher"]

log = logging.getLogger("chitchat.node")


class RoomWatcher(Protocol):
    """Keeps per-room state for the rooms this node follows."""

    def follow(self, room: str) -> None: ...
    def unfollow(self, room: str) -> None: ...
    def resumed(self) -> None:
        """The broker reconnected: control messages of followed rooms may be lost."""


class Node:
    """See the module docstring. Used only on the event loop's thread."""

    def __init__(self, broker: Broker, store: Store) -> None:
        self.id = secrets.token_hex(4)
        self.broker = broker
        self.store = store
        self.feeds: dict[str, Feed] = {}
        self.hub = Hub()
        self.watchers: list[RoomWatcher] = []
        self._ids = itertools.count(1)
        self._control: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self._starting: dict[str, asyncio.Future[None]] = {}
        #: Called when a followed room's log turns out to have been reset.
        self.on_reset: Callable[[str, Feed], None] | None = None

    def next_id(self) -> str:
        """A message id unique across processes and restarts, without coordination."""
        return f"{self.id}-{next(self._ids):x}"

    def on(self, op: str, handler: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``handler(channel, message)`` for every control message with this op."""
        self._control[op] = handler

    async def start(self) -> None:
        await self.broker.start(self._received, self._resumed)

    async def stop(self) -> None:
        for feed in self.feeds.values():
            feed.stop()
        self.feeds.clear()
        await self.broker.stop()

    async def publish(self, channel: str, payload: str) -> None:
        await self.broker.publish(channel, payload)

    # -- rooms --------------------------------------------------------------------------

    async def follow(self, room: str) -> Feed:
        """The room's feed, subscribed and positioned. The caller holds a reservation
        (``feed.reserved``) that it must give back, by holding a listener or with
        ``unfollow_if_idle``."""
        feed = self.feeds.get(room)
        if feed is None:
            feed = self.feeds[room] = Feed(room, self.store)
            self._starting[room] = asyncio.ensure_future(self._start_feed(feed))
            for watcher in self.watchers:
                watcher.follow(room)
        feed.reserved += 1
        starting = self._starting.get(room)
        if starting is not None:
            try:
                await asyncio.shield(starting)
            except BaseException:
                feed.reserved -= 1
                self.unfollow_if_idle(room)
                raise
        return feed

    async def _start_feed(self, feed: Feed) -> None:
        try:
            await self.broker.subscribe(channels.room_channel(feed.room))
            position = await self.store.position(feed.room)
            feed.start(position.epoch, position.last)
        finally:
            self._starting.pop(feed.room, None)

    def unfollow_if_idle(self, room: str) -> None:
        feed = self.feeds.get(room)
        if feed is None or not feed.idle or room in self._starting:
            return
        del self.feeds[room]
        feed.stop()
        for watcher in self.watchers:
            watcher.unfollow(room)
        spawn(self.broker.unsubscribe(channels.room_channel(room)), "broker unsubscribe")

    # -- users --------------------------------------------------------------------------

    async def listen_user(self, user_id: str, listener: Any) -> None:
        if self.hub.add(channels.user_channel(user_id), listener):
            await self.broker.subscribe(channels.user_channel(user_id))

    def unlisten_user(self, user_id: str, listener: Any) -> None:
        if self.hub.remove(channels.user_channel(user_id), listener):
            spawn(self.broker.unsubscribe(channels.user_channel(user_id)), "broker unsubscribe")

    # -- what the broker delivers -------------------------------------------------------

    def _received(self, channel: str, payload: str) -> None:
        try:
            kind, seq, text = channels.parse(payload)
        except ValueError:
            log.error("dropped a malformed payload on %r: %.80r", channel, payload)
            return
        if kind == channels.CONTROL:
            message = json.loads(text)
            handler = self._control.get(message.get("op"))
            if handler is not None:
                handler(channel, message)
        elif seq is not None and channel.startswith("r:"):
            feed = self.feeds.get(channel[2:])
            if feed is not None:
                feed.receive(seq, kind == channels.MESSAGE, text)
        elif kind == channels.PUSH:
            self.hub.deliver(channel, text)

    def _resumed(self) -> None:
        """The broker reconnected: entries may have been lost; every feed re-reads."""
        log.warning("the broker reconnected: checking %d room(s) for lost entries",
                    len(self.feeds))
        for room, feed in list(self.feeds.items()):
            spawn(self._check(room, feed), f"checking room {room!r} after a reconnect")
        for watcher in self.watchers:
            watcher.resumed()

    async def _check(self, room: str, feed: Feed) -> None:
        position = await self.store.position(room)
        if position.epoch != feed.epoch:
            # The log itself was lost (a store that restarted empty): the room's
            # connections must start over; they reconnect and get a ``reset``.
            log.warning("room %r: the store's log was reset (epoch %s -> %s)", room,
                        feed.epoch, position.epoch)
            if self.on_reset is not None:
                self.on_reset(room, feed)
        elif position.last > feed.position:
            feed.catch_up()
