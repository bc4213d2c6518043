"""What the Redis engine's parts share: redis-py (imported lazily), the auto-pipeline
every command of the per-message path goes through, errors, key names.

redis-py is an optional dependency (``pip install chitchat[redis]``, which brings its C
reply parser, hiredis): nothing here imports it before a Redis part is made, so
``import chitchat`` works without it.

``Pipeline`` is the engine's group commit: every script and command issued to it during
one event-loop turn (appends from many concurrent senders, reads, presence scripts,
publishes) goes to Redis as ONE pipeline, without MULTI (``transaction=False``), on one
pooled redis-py connection, and each caller is answered in order as its reply is read.
One batch is in flight at a time: what is issued meanwhile forms the next one, so the
batches grow with the load, and the calls of one process reach Redis in the order they
were issued (an append, then its publish).

No command is retried by itself: a script that appends to a log must not run twice
because a reply was lost, and an outage must show at once as a ``BackendError`` (a
send answered ``unavailable``) instead of a request hanging through a backoff. Only a
script Redis did not have (NOSCRIPT: not run) is loaded and sent again, and the store
sends a read again once when its connection had been closed. The broker's reconnect
loop is chitchat's own, so that it knows when payloads may have been lost and can tell
the node (``resumed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._tasks import spawn
from .errors import BackendError, ConfigurationError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection, ConnectionPool

    from .broker import Broker
    from .presence import PresenceBackend
    from .settings import Settings
    from .store import Store

__all__ = ["Pipeline", "Script", "connect", "engine", "failures", "load", "members",
           "room_key", "stale", "user_part"]

log = logging.getLogger("chitchat.redis")

INSTALL = "pip install chitchat[redis]"
#: Seconds a command may take before it counts as failed (a hung server is an outage).
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
#: Connections per administrative client (the server checks, the broker's pub/sub).
MAX_CONNECTIONS = 32
#: Seconds a command may wait for one of them (a burst, not an outage: a down server
#: refuses connections at once).
POOL_WAIT = 30.0
#: Commands per pipeline at most: a longer queue goes in several, one after the other.
MAX_BATCH = 1000


def load() -> Any:
    """The ``redis.asyncio`` module, or ``ConfigurationError`` saying how to install it."""
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ConfigurationError(
            f"the Redis engine needs redis-py's asyncio client: {INSTALL}") from exc
    return redis.asyncio


def connect(url: str, *, timeout: float | None = COMMAND_TIMEOUT) -> aioredis.Redis:
    """A client for ``url`` that answers in text and never retries on its own."""
    aioredis = load()
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    try:
        # Blocking: a burst of concurrent commands waits for a free connection (at
        # most POOL_WAIT) instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT,
            decode_responses=True, retry=Retry(NoBackoff(), 0), socket_timeout=timeout,
            socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=0)
    except ValueError as exc:
        raise ConfigurationError(f"not a Redis URL: {url!r} ({exc})") from exc
    return aioredis.Redis.from_pool(pool)  # type: ignore[no-any-return] # closes the pool with it


def failures(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis failed" (translated to ``BackendError``), and
    ``more``."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, *more)


def stale() -> tuple[type[BaseException], ...]:
    """What a command raises when its connection was lost before its reply came (not a
    timeout: a command that timed out may still be running)."""
    from redis.exceptions import ConnectionError as Lost

    return (Lost,)


async def members(pipeline: Pipeline, key: str) -> set[str]:
    """The members of a set."""
    return set(await pipeline.call("SMEMBERS", key))


@contextlib.asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Raise Redis's and the network's errors inside as ``BackendError`` (``what``:
    the operation, for the message)."""
    try:
        yield
    except failures() as exc:
        raise BackendError(f"Redis: {what} failed: {exc}") from exc


def room_key(prefix: str, room: str, part: str) -> str:
    """The key of one of ``room``'s structures. The room sits in a hash tag so that all
    of one room's keys live in one Cluster slot; ``part`` is one of a fixed set of names
    without ``}``, so no two rooms' keys can ever be the same string."""
    return f"{prefix}:{{{room}}}:{part}"


def user_part(user: str) -> str:
    """``user`` as a prefix-free key part: its length in UTF-8 bytes (6 digits), then
    the user. No user's part starts with another's, whatever characters they hold (the
    Lua scripts build the same string with ``string.format('%06d', #user) .. user``)."""
    return f"{len(user.encode()):06d}{user}"


def engine(url: str, settings: Settings, broker: Broker | None, store: Store | None,
           presence: PresenceBackend | None) -> tuple[Broker, Store, PresenceBackend]:
    """``Chat(redis=url)``: the Redis broker, store and presence backend for the parts
    not given, the store told the Chat's retention count and dedup window, and all the
    parts made here sharing one ``Pipeline`` (one pipeline per loop turn, not three)."""
    from .brokers.redis import RedisBroker
    from .redis_presence import RedisPresence
    from .stores.redis import RedisStore

    load()  # fail now, at construction, if redis-py is missing
    shared = Pipeline(url)
    # Built together, the store publishes each entry from the script that makes it and
    # the broker leaves those out: one round trip per send instead of two.
    together = broker is None and store is None
    if broker is None:
        broker = RedisBroker(url, store_publishes=together)
        broker._pipeline = shared
    if store is None:
        store = RedisStore(url, capacity=settings.retention.count,
                           dedup_window=settings.dedup_window, publish=together)
        store._pipeline = shared
    if presence is None:
        presence = RedisPresence(url)
        presence._pipeline = shared
    return broker, store, presence


async def check_server(url: str, what: str) -> None:
    """Refuse a server that may evict keys; warn loudly when writes are not durable.

    An evicted key of a room's log breaks the log (centrifugo#888): only
    ``maxmemory-policy noeviction`` is accepted. Durability of acknowledged messages
    needs the append-only file with ``appendfsync always`` (centrifugo#664).
    """
    client = connect(url)
    try:
        await _check(client, what)
    finally:
        await client.aclose()


async def _check(client: aioredis.Redis, what: str) -> None:
    async with translated("reading the server's configuration"):
        memory = await client.info("memory")
        persistence = await client.info("persistence")
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise ConfigurationError(
            f"{what}: this Redis may evict keys (maxmemory-policy {policy}), which would "
            "silently break rooms' logs and presence: set maxmemory-policy noeviction")
    if not int(persistence.get("aof_enabled", 0)):
        log.warning("%s: this Redis has no append-only file (appendonly no): acknowledged "
                    "messages are lost if it restarts; set appendonly yes and appendfsync "
                    "always for durability", what)
        return
    fsync = await _config(client, "appendfsync")
    if fsync is not None and fsync != "always":
        log.warning("%s: this Redis syncs its append-only file %s, not always: up to a "
                    "second of acknowledged messages may be lost if it crashes", what, fsync)


async def _config(client: aioredis.Redis, name: str) -> str | None:
    """A CONFIG value, or None where CONFIG is disabled (many hosted services)."""
    try:
        values = await client.config_get(name)
    except failures():
        return None
    value = values.get(name)
    return None if value is None else str(value)


def chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Script:
    """A Lua script, run by its SHA1 (``EVALSHA``); ``Pipeline`` loads it on each
    connection ahead of its first run there."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class _Call:
    """One queued command and the future its caller awaits."""

    __slots__ = ("command", "future", "script")

    def __init__(self, command: tuple[Any, ...], script: Script | None,
                 future: asyncio.Future[Any]) -> None:
        self.command = command
        self.script = script
        self.future = future


class Pipeline:
    """Commands to the Redis at ``url``, auto-pipelined (see the module docstring).

    ``call`` and ``script`` return the future of the reply (text); an error reply is
    raised as redis-py's ``ResponseError``. A connection lost before a call's reply came
    fails that call with redis-py's ``ConnectionError``, and only the calls whose replies
    had not come (those before them were answered); a batch not answered within
    ``timeout`` seconds fails the calls not answered yet with redis-py's
    ``TimeoutError`` (they may have run) and closes the connection. The next batch
    connects again: while Redis is down every call fails at once. Used only on the
    event loop's thread.
    """

    def __init__(self, url: str, timeout: float = COMMAND_TIMEOUT) -> None:
        aioredis = load()
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        try:
            self._pool: ConnectionPool = aioredis.ConnectionPool.from_url(
                url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                # Each batch has one deadline of its own (``timeout``), not one per reply.
                socket_timeout=None, socket_connect_timeout=CONNECT_TIMEOUT,
                health_check_interval=0)
        except ValueError as exc:
            raise ConfigurationError(f"not a Redis URL: {url!r} ({exc})") from exc
        self.url = url
        self.timeout = timeout
        self._queue: list[_Call] = []
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None  # the last one used
        self._loaded: set[str] = set()  # the scripts loaded on it since it connected
        self._pack = _packer()

    def call(self, *command: Any) -> asyncio.Future[Any]:
        """Queue one command (``"PUBLISH", channel, payload``)."""
        return self._queue_call(command, None)

    def script(self, script: Script, keys: Sequence[str],
               args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue a run of ``script``; if Redis no longer has it (``SCRIPT FLUSH``, a
        restart), it is loaded and run again (it did not run)."""
        return self._queue_call(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def close(self) -> None:
        """Send what is queued, wait for its replies, then close the connection (a
        later call opens one again: parts that share this pipeline close it in turn)."""
        if self._task is not None:
            await asyncio.wait([self._task])
        await self._pool.disconnect()

    def _queue_call(self, command: tuple[Any, ...], script: Script | None) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(command, script, future))
        if self._task is None:
            # Starts on the next loop turn: everything issued until then is one batch.
            self._task = spawn(self._drain(), "the Redis pipeline")
        return future

    async def _drain(self) -> None:
        """Send the queue, one batch at a time, until it is empty."""
        try:
            while self._queue:
                try:
                    async with asyncio.timeout(self.timeout):
                        connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                except failures() as exc:
                    _fail(self._take(), _timed_out(exc, self.timeout))
                    continue
                try:
                    if connection is not self._connection:
                        self._connection, self._loaded = connection, set()
                        # Called on every (re)connection: maybe to a restarted server.
                        connection.register_connect_callback(self._connected)
                    while self._queue:
                        await self._send(connection, self._take(), retry=True)
                        # Let the callers just answered run first: the calls they make
                        # next join the next batch instead of trailing behind it.
                        await asyncio.sleep(0)
                finally:
                    await self._pool.release(connection)
        finally:
            self._task = None

    def _take(self) -> list[_Call]:
        batch = self._queue[:MAX_BATCH]
        del self._queue[:MAX_BATCH]
        return batch

    def _connected(self, connection: AbstractConnection) -> None:
        self._loaded = set()

    async def _send(self, connection: AbstractConnection, batch: list[_Call],
                    retry: bool) -> None:
        """One pipeline: the scripts not loaded on this connection yet are loaded ahead
        of their first run; each caller is answered as its reply is read."""
        from redis.exceptions import NoScriptError, ResponseError

        commands: list[tuple[Any, ...]] = []
        replies: list[_Call | Script] = []  # whose each reply is: a call's, or a LOAD's
        for call in batch:
            script = call.script
            if script is not None and script.sha not in self._loaded:
                self._loaded.add(script.sha)
                commands.append(("SCRIPT", "LOAD", script.source))
                replies.append(script)
            commands.append(call.command)
            replies.append(call)
        unloadable: dict[str, ResponseError] = {}
        missing: list[tuple[_Call, ResponseError]] = []  # NOSCRIPT: did not run
        answered = 0
        try:
            async with asyncio.timeout(self.timeout):
                packed = (connection.pack_commands(commands) if self._pack is None else
                          [b"".join([self._pack(command) for command in commands])])
                await connection.send_packed_command(packed, check_health=False)
                for whose in replies:
                    try:
                        reply = await connection.read_response()
                    except ResponseError as exc:
                        reply = exc
                    answered += 1
                    if isinstance(whose, Script):
                        if isinstance(reply, ResponseError):
                            unloadable[whose.sha] = reply
                    elif isinstance(reply, NoScriptError) and whose.script is not None:
                        missing.append((whose, unloadable.get(whose.script.sha, reply)))
                    elif not whose.future.done():
                        if isinstance(reply, ResponseError):
                            whose.future.set_exception(reply)
                        else:
                            whose.future.set_result(reply)
        except failures() as exc:
            await connection.disconnect(nowait=True)
            unanswered = [c for c in replies[answered:] if isinstance(c, _Call)]
            _fail([call for call, _ in missing] + unanswered, _timed_out(exc, self.timeout))
            return
        if not missing:
            return
        again = []
        for call, error in missing:
            assert call.script is not None
            self._loaded.discard(call.script.sha)
            if retry and call.script.sha not in unloadable:
                again.append(call)
            elif not call.future.done():
                call.future.set_exception(error)
        if again:  # in their order, before any later call
            await self._send(connection, again, retry=False)


def _packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    """hiredis's C command packer (the ``chitchat[redis]`` extra installs hiredis), or
    None for redis-py's own. redis-py's asyncio client packs in Python, its sync client
    with this same function: about 5 us for an append's 24 arguments, against 60."""
    try:
        from hiredis import pack_command
    except ImportError:
        return None
    return pack_command


def _fail(calls: Iterable[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(exc)


def _timed_out(exc: BaseException, timeout: float) -> BaseException:
    """redis-py's ``TimeoutError`` for the pipeline's own deadline, else ``exc``."""
    if isinstance(exc, TimeoutError):
        from redis.exceptions import TimeoutError as NoAnswer

        return NoAnswer(f"Redis did not answer within {timeout:g} s")
    return exc
