"""The Redis broker: payloads between the processes of a chat over Redis pub/sub.

Payloads travel unchanged (the envelopes of ``chitchat.channels``) on Redis channels
named ``<prefix>:<channel>``. Publishes go through the engine's auto-pipeline
(``chitchat._redis.Pipeline``: one pipeline per event-loop turn, with the store's
scripts when the parts share it). One redis-py ``PubSub`` connection per process reads
every subscribed channel. When it is lost, the broker keeps reconnecting (full-jitter
exponential backoff), subscribes every channel again, and only then calls
``resumed``: payloads published meanwhile are gone (pub/sub keeps nothing), so the node
re-reads positions and fills its rooms' gaps from the store. The reconnect loop is the
broker's own, not redis-py's: ``PubSub`` subscribes again by itself after a reconnection
but tells no one, and the node must know (``resumed``). While Redis is unreachable
``publish`` raises ``BackendError``: a payload is never taken and then dropped. An
outage is logged once when it begins and once when it ends, not per payload.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
from typing import TYPE_CHECKING, Any, cast

from .. import _redis, channels
from .._tasks import spawn
from ..broker import Broker, Deliver, Resumed
from ..errors import BackendError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import PubSub

__all__ = ["RedisBroker"]

log = logging.getLogger("chitchat.redis")

#: Seconds the subscribe confirmations of a (re)connection may take.
CONFIRM_TIMEOUT = 5.0


class _Lost(Exception):
    """The subscriber connection stopped answering."""


class RedisBroker(Broker):
    """The broker contract on Redis pub/sub at ``url`` (channels ``<prefix>:...``).

    ``backoff``: the first and the longest wait (s) between reconnection attempts;
    ``ping_every``: seconds of silence after which the subscriber connection is pinged
    (three silent intervals in a row count as a lost connection: a hung server).
    ``publish`` works without ``start`` (a ``Publisher`` only publishes).
    ``store_publishes``: a ``RedisStore(publish=True)`` of the same prefix publishes the
    rooms' log entries from its scripts, so ``publish`` leaves those out.
    """

    def __init__(self, url: str, *, prefix: str = "chitchat",
                 backoff: tuple[float, float] = (0.05, 2.0), ping_every: float = 5.0,
                 store_publishes: bool = False) -> None:
        self._pipeline = _redis.Pipeline(url)  # refuses what is not a Redis URL
        self.url = url
        self.prefix = prefix
        self._backoff = backoff
        self._ping_every = ping_every
        self._store_publishes = store_publishes
        self._client: aioredis.Redis | None = None  # the pool of the PubSub connection
        self._channels: set[str] = set()
        self._deliver: Deliver | None = None
        self._resumed: Resumed | None = None
        self._task: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None
        self._live = False  # the subscriber connection is up and confirmed
        self._live_once = False  # the last connection got as far as that
        self._waiters: dict[str, collections.deque[asyncio.Future[None]]] = {}
        self._down = False  # an outage is under way (logged once)
        self._outage_began = 0.0
        self._first: asyncio.Future[None] | None = None
        self._heard = 0  # replies and payloads read, for the silence check
        # A channel of this process alone, so that the connection exists before the
        # first real subscription and can be pinged.
        self._own = f"{prefix}:broker:{secrets.token_hex(8)}"

    def _name(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    # -- the contract -------------------------------------------------------------------

    async def start(self, deliver: Deliver, resumed: Resumed | None = None) -> None:
        """Connect and subscribe; raises ``BackendError`` if the first attempt fails
        (a wrong URL or a server that is not there should be loud at start)."""
        self._deliver, self._resumed = deliver, resumed
        self._first = asyncio.get_running_loop().create_future()
        self._task = spawn(self._run(), "the Redis broker's subscriber connection")
        await self._first

    async def stop(self) -> None:
        self._deliver = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._channels.clear()
        await self._pipeline.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def publish(self, channel: str, payload: str) -> None:
        if (self._store_publishes and channel.startswith("r:")
                and payload[:1] in (channels.MESSAGE, channels.ENTRY)):
            return  # the store's script published this entry when it made it
        try:
            await self._pipeline.call("PUBLISH", self._name(channel), payload)
        except _redis.failures() as exc:
            self._lost(exc)
            raise BackendError(f"Redis: publish failed: {exc}") from exc
        if self._down and self._live:
            self._back()

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis confirmed the subscription (payloads published after this
        returns are delivered). While disconnected it only records the channel: it is
        subscribed on reconnection, and ``resumed`` follows."""
        self._channels.add(channel)
        pubsub = self._pubsub
        if not self._live or pubsub is None:
            return
        name = self._name(channel)
        confirmed = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, collections.deque()).append(confirmed)
        try:
            await pubsub.subscribe(name)
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                await confirmed
        except _redis.failures(TimeoutError):
            pass  # the connection is failing: the reconnection subscribes it, then resumed

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if self._live and pubsub is not None:
            with contextlib.suppress(*_redis.failures()):
                # Failing: the reconnection subscribes only what is still wanted.
                await pubsub.unsubscribe(self._name(channel))

    # -- the subscriber connection ------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
            except _redis.failures(_Lost) as exc:
                if self._first is not None and not self._first.done():
                    self._first.set_exception(BackendError(f"Redis: cannot subscribe: {exc}"))
                    return
                self._lost(exc)
            if self._live_once:
                attempt = 0
            attempt += 1
            low, high = self._backoff
            await asyncio.sleep(max(low, random.uniform(0, min(high, low * 2 ** attempt))))

    async def _session(self) -> None:
        self._live_once = False
        if self._client is None:
            # No timeout on its reads, which wait for payloads: ``_read`` notices a
            # silent server, and the subscription below has a deadline of its own.
            self._client = _redis.connect(self.url, timeout=None)
        pubsub = self._client.pubsub()
        self._pubsub = pubsub
        try:
            names = [self._own, *sorted(self._name(c) for c in self._channels)]
            loop = asyncio.get_running_loop()
            confirmations = []
            for name in names:
                confirmed = loop.create_future()
                self._waiters.setdefault(name, collections.deque()).append(confirmed)
                confirmations.append(confirmed)
            deadline = loop.time() + CONFIRM_TIMEOUT
            try:
                async with asyncio.timeout(CONFIRM_TIMEOUT):  # connects first
                    await pubsub.subscribe(*names)
            except TimeoutError as exc:
                raise _Lost("Redis did not answer the connection in time") from exc
            while not all(c.done() for c in confirmations):
                if loop.time() > deadline:
                    raise _Lost("Redis did not confirm the subscriptions in time")
                message = await pubsub.get_message(timeout=max(0.01, deadline - loop.time()))
                if message is not None:
                    self._handle(message)
            self._live = self._live_once = True
            missing = {self._name(c) for c in self._channels} - set(names)
            if missing:  # subscribed while this connection was being made
                await pubsub.subscribe(*missing)
            self._connected()
            await self._read(pubsub)
        finally:
            self._live = False
            self._pubsub = None
            for waiters in self._waiters.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            self._waiters.clear()
            with contextlib.suppress(*_redis.failures()):
                await cast(Any, pubsub).aclose()  # typed in redis-py 8.2, not before

    def _connected(self) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
            return
        if self._down:
            self._back()
        if self._resumed is not None:
            try:
                self._resumed()
            except Exception:
                log.exception("the broker's resumed callback failed")

    async def _read(self, pubsub: PubSub) -> None:
        """Until the connection fails, or stays silent through three pings. The reads
        block (a timer per read would cost about as much as the read itself); this
        loop pings when nothing was heard for ``ping_every``."""
        reader = asyncio.ensure_future(self._receive(pubsub))
        try:
            heard, silent = self._heard, 0
            while True:
                done, _ = await asyncio.wait([reader], timeout=self._ping_every)
                if done:
                    reader.result()  # raises why the connection failed
                if self._heard != heard:
                    heard, silent = self._heard, 0
                    continue
                silent += 1
                if silent >= 3:
                    raise _Lost(f"no answer from Redis for {3 * self._ping_every:g} s")
                await pubsub.ping()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)  # blocks
            self._heard += 1
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, name = message["type"], message["channel"]
        if kind == "message":
            deliver = self._deliver
            if deliver is not None and name != self._own:
                try:
                    deliver(name[len(self.prefix) + 1:], message["data"])
                except Exception:
                    log.exception("delivering a payload on %r failed", name)
        elif kind == "subscribe":
            waiters = self._waiters.get(name)
            if waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                if not waiters:
                    del self._waiters[name]

    # -- the outage, logged once --------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            self._outage_began = asyncio.get_running_loop().time()
            log.error("Redis broker: lost Redis (%s): reconnecting; publishes fail until "
                      "it is back", exc)

    def _back(self) -> None:
        self._down = False
        took = asyncio.get_running_loop().time() - self._outage_began
        log.warning("Redis broker: Redis is back after %.1f s; resubscribed %d channel(s), "
                    "rooms are re-read from the store", took, len(self._channels))
