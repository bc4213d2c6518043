"""The Redis engine's connection for the per-message path: RESP2, auto-pipelined.

redis-py's asyncio client costs about 0.3 ms of CPU per command on this path (packing
every argument, a pool with a lock, a timeout task per read: measured in
docs/benchmarks-redis.md), which made one chat process on Redis several times slower
than one in memory. This connection does only what the engine needs: every command
issued during one event-loop turn goes out in ONE write (auto-pipelining), replies are
matched in order, and a whole reply is parsed from the buffer in one pass. One
connection per client object keeps the commands of one process in the order they were
issued (an append, then its publish). redis-py still reads the URL
(``parse_url``: hosts, TLS, credentials, database, Unix sockets) and does the
administrative calls.

Failures raise ``Down`` (an ``OSError``: the connection failed, or a command took longer
than ``timeout``, in which case it may have run) or ``ReplyError`` (Redis answered
with an error).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl as ssl_module
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Closed", "Connection", "Down", "ReplyError", "Script", "Subscriber"]

_NEED = object()  # a reply not complete in the buffer yet


class Down(OSError):
    """The connection to Redis failed (or a command timed out)."""


class Closed(Down):
    """The connection closed (a command sent on it was not answered: on a server that
    restarted, it did not run)."""


class ReplyError(Exception):
    """Redis answered a command with an error."""


def encode(args: Sequence[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    add = parts.append
    for arg in args:
        data = arg.encode() if arg.__class__ is str else (
            arg if arg.__class__ is bytes else str(arg).encode())
        add(b"$%d\r\n" % len(data))
        add(data)
        add(b"\r\n")
    return b"".join(parts)


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _NEED, pos
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            return _NEED, pos
        return buf[end + 2:stop].decode(), stop + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1:end])
        if count < 0:
            return None, end + 2
        items = []
        at = end + 2
        for _ in range(count):
            item, at = _parse(buf, at)
            if item is _NEED:
                return _NEED, pos
            items.append(item)
        return items, at
    if kind == 58:  # : integer
        return int(buf[pos + 1:end]), end + 2
    if kind == 43:  # + simple string
        return buf[pos + 1:end].decode(), end + 2
    if kind == 45:  # - error
        return ReplyError(buf[pos + 1:end].decode()), end + 2
    raise Down(f"not a RESP2 reply: {bytes(buf[pos:pos + 20])!r}")


class _Protocol(asyncio.Protocol):
    """Writes what is queued once per loop turn; hands each parsed reply to ``on_reply``."""

    def __init__(self, on_reply: Callable[[Any], None]) -> None:
        self.on_reply = on_reply
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.buf = bytearray()
        self.closed = asyncio.get_running_loop().create_future()
        self.heard = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(Closed(f"Redis closed the connection ({exc or 'EOF'})"))

    def send(self, data: bytes) -> None:
        if not self.out:
            asyncio.get_running_loop().call_soon(self._flush)
        self.out.append(data)

    def _flush(self) -> None:
        out, self.out = self.out, []
        if self.transport is not None and not self.closed.done():
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.heard = asyncio.get_running_loop().time()
        buf = self.buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = _parse(buf, pos)
                if reply is _NEED:
                    break
                self.on_reply(reply)
        except (ValueError, Down) as exc:
            self.abort(Down(f"a reply from Redis could not be read: {exc}"))
            return
        del buf[:pos]

    def abort(self, why: Down) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.abort()


async def _open(url: str, on_reply: Callable[[Any], None]) -> _Protocol:
    from redis.asyncio.connection import SSLConnection, parse_url

    from ._redis import CONNECT_TIMEOUT

    options = parse_url(url)
    loop = asyncio.get_running_loop()
    protocol = _Protocol(on_reply)
    try:
        if "path" in options:
            await asyncio.wait_for(loop.create_unix_connection(lambda: protocol,
                                                               options["path"]),
                                   CONNECT_TIMEOUT)
        else:
            tls = (ssl_module.create_default_context()
                   if options.get("connection_class") is SSLConnection else None)
            await asyncio.wait_for(loop.create_connection(
                lambda: protocol, options.get("host", "localhost"), options.get("port", 6379),
                ssl=tls), CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise Down(f"cannot connect to Redis: {exc}") from exc
    if options.get("password"):
        protocol.send(encode(["AUTH", *filter(None, [options.get("username"),
                                                     options["password"]])]))
    if options.get("db"):
        protocol.send(encode(["SELECT", options["db"]]))
    return protocol


class Connection:
    """Commands to Redis at ``url`` over one auto-pipelined connection, made on first use
    and made again after a failure."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Future[_Protocol] | None = None
        # (reply future, loop time sent) per command, in the order sent; AUTH/SELECT
        # replies of a new connection are checked by ``_setup``.
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = (
            collections.deque())
        self._watchdog: asyncio.TimerHandle | None = None
        self._loaded: set[str] = set()  # scripts loaded on this connection

    async def call(self, *args: Any) -> Any:
        await self._ensure()
        return await self._send(args)

    async def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        await self._ensure()
        if script.sha not in self._loaded:
            # Loaded once per connection (a new connection may be to a restarted
            # server), queued just before its first run: no extra round trip.
            self._loaded.add(script.sha)
            self._send(("SCRIPT", "LOAD", script.source)).add_done_callback(_retrieved)
        try:
            return await self._send(("EVALSHA", script.sha, len(keys), *keys, *args))
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            # Not run: the server's scripts were flushed meanwhile.
            await self.call("SCRIPT", "LOAD", script.source)
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _ensure(self) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.closed.done():
            # Closed, its callback not run yet: fail what it owed before a new one.
            self._lost(protocol, protocol.closed.result())
            protocol = None
        if protocol is None:
            await self._connect()

    def _send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        assert self._protocol is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((future, loop.time()))
        self._protocol.send(encode(args))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout / 2, self._watch)
        return future

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._protocol is not None:
            self._protocol.abort(Down("closed"))
            self._protocol = None
        self._fail(Down("the connection was closed"))

    async def _connect(self) -> _Protocol:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if self._opening is opening and opening.done():
                self._opening = None

    async def _open(self) -> _Protocol:
        protocol = await _open(self.url, self._reply)
        self._loaded = set()
        setup = len(protocol.out)
        loop = asyncio.get_running_loop()
        checks = [loop.create_future() for _ in range(setup)]
        for check in checks:
            self._pending.append((check, loop.time()))
        self._protocol = protocol
        protocol.closed.add_done_callback(lambda done: self._lost(protocol, done.result()))
        for check in checks:
            await check  # a refused AUTH/SELECT raises ReplyError here
        return protocol

    def _reply(self, reply: Any) -> None:
        if not self._pending:
            return
        future, _ = self._pending.popleft()
        if future.done():
            return
        if isinstance(reply, ReplyError):
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _lost(self, protocol: _Protocol, why: Down) -> None:
        if self._protocol is protocol:
            self._protocol = None
            self._fail(why)

    def _fail(self, why: Down) -> None:
        pending, self._pending = self._pending, collections.deque()
        for future, _ in pending:
            if not future.done():
                future.set_exception(why)

    def _watch(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        oldest = self._pending[0][1]
        if loop.time() - oldest > self.timeout and self._protocol is not None:
            self._protocol.abort(Down(f"Redis did not answer within {self.timeout:g} s"))
        self._watchdog = loop.call_later(self.timeout / 2, self._watch)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A reply nobody awaits: its failure shows on the command queued after it."""
    if not future.cancelled():
        future.exception()


class Subscriber:
    """A connection in subscribe mode: every push (``["message", channel, data]``,
    ``["subscribe", channel, count]``, ``["pong", ""]``...) goes to ``on_push``."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, url: str, on_push: Callable[[list[Any]], None]) -> Subscriber:
        replies: list[Any] = []
        answered = asyncio.get_running_loop().create_future()
        protocol = await _open(url, replies.append)
        setup = len(protocol.out)  # AUTH / SELECT, answered before anything else

        def first(reply: Any) -> None:
            replies.append(reply)
            if len(replies) >= setup and not answered.done():
                answered.set_result(None)

        protocol.on_reply = first  # no reply can have come: nothing was written yet
        if setup:
            await asyncio.wait([answered, protocol.closed], return_when=asyncio.FIRST_COMPLETED)
            if protocol.closed.done():
                raise protocol.closed.result()
        for reply in replies:
            if isinstance(reply, ReplyError):
                protocol.abort(Down(str(reply)))
                raise reply
        protocol.on_reply = on_push
        return cls(protocol)

    @property
    def closed(self) -> asyncio.Future[Down]:
        return self._protocol.closed

    @property
    def heard(self) -> float:
        """Loop time of the last bytes from Redis."""
        return self._protocol.heard

    def send(self, *args: Any) -> None:
        self._protocol.send(encode(args))

    def close(self) -> None:
        self._protocol.abort(Down("closed"))


class Script:
    """A Lua script, run by its SHA1 (loaded on first use on each server)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
