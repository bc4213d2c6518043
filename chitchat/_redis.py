"""What the Redis engine's parts share: the lazy import of redis-py, clients, errors.

redis-py is an optional dependency (``pip install chitchat[redis]``): nothing here
imports it before a Redis part is made, so ``import chitchat`` works without it. It
reads the URL and makes the administrative calls; the per-message path runs on
``chitchat._resp`` (see there why).

No command is retried by itself: a script that appends to a log must not run twice
because a reply was lost, and an outage must show at once as a ``BackendError`` (a
send answered ``unavailable``) instead of a request hanging through a backoff (only a
read sent on a connection that had closed is sent again). The broker's reconnect loop
is chitchat's own, so that it knows when payloads may have been lost and can tell the
node (``resumed``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from .errors import BackendError, ConfigurationError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ._resp import Connection
    from .broker import Broker
    from .presence import PresenceBackend
    from .settings import Settings
    from .store import Store

__all__ = ["check_url", "connect", "engine", "failures", "load", "members", "room_key",
           "stale", "user_part"]

log = logging.getLogger("chitchat.redis")

INSTALL = "pip install chitchat[redis]"
#: Seconds a command may take before it counts as failed (a hung server is an outage).
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
#: Connections per client: concurrent commands beyond this wait for one.
MAX_CONNECTIONS = 32
#: Seconds a command may wait for one of them (a burst, not an outage: a down server
#: refuses connections at once).
POOL_WAIT = 30.0


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

    from ._resp import ReplyError

    return (RedisError, ReplyError, OSError, *more)


def check_url(url: str) -> None:
    """Refuse what is not a Redis URL (and a missing redis-py) at construction."""
    load()
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"not a Redis URL: {url!r} ({exc})") from exc


def stale() -> tuple[type[BaseException], ...]:
    """What a command on a connection the server closed meanwhile raises (not a
    timeout: a command that timed out may have run)."""
    from ._resp import Closed

    return (Closed,)


async def members(connection: Connection, key: str) -> set[str]:
    """The members of a set."""
    return set(await connection.call("SMEMBERS", key))


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
    not given, the store told the Chat's retention count and dedup window."""
    from .brokers.redis import RedisBroker
    from .redis_presence import RedisPresence
    from .stores.redis import RedisStore

    load()  # fail now, at construction, if redis-py is missing
    # Built together, the store publishes each entry from the script that makes it and
    # the broker leaves those out: one round trip per send instead of two.
    together = broker is None and store is None
    return (broker if broker is not None else RedisBroker(url, store_publishes=together),
            store if store is not None else RedisStore(
                url, capacity=settings.retention.count, dedup_window=settings.dedup_window,
                publish=together),
            presence if presence is not None else RedisPresence(url))


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
