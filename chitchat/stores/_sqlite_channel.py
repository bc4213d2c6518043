"""The event loop's end of the pipe to SQLiteStore's helper process (``_sqlite_child``).

``call(name, *args)`` queues a request and returns its answer once the process has
committed the batch that ran it. Requests made in one turn of the event loop go out in
one frame (one write); answers come back a frame per batch, in request order, read by
the event loop like any other pipe: it never waits on the disk, and never on the GIL
of a thread that does.

One batch is at the process at a time: requests made while it is there wait in the
outbox and go out together when its last answer arrives. Under load that makes the
batches, and so the commits, as large as the time of one commit allows, and the event
loop reads one answer frame per commit instead of one per small write.

If the process dies, the requests it had not answered fail with ``BackendError`` (they
were not committed) and the next request starts a new process on the same file.
"""

from __future__ import annotations

import asyncio
import collections
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
from typing import Any

from ..errors import BackendError
from ._sqlite_child import frame

__all__ = ["Channel"]

_LENGTH = struct.Struct(">I")
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The helper process loads only what it needs: stub packages stand in for chitchat and
# chitchat.stores, whose __init__ would import tornado, sockjs and the rest (a third of
# a second). -I: no current directory, no PYTHON* variables, no user site on its path.
_BOOT = """\
import os, sys, types
root = sys.argv[1]
for name in ("chitchat", "chitchat.stores"):
    module = sys.modules[name] = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
from chitchat.stores._sqlite_child import serve
serve(sys.argv[2], sys.argv[3])
"""


class Channel:
    """Requests to one database file's helper process; ``commits`` counts its
    transactions (fewer than requests: they are grouped)."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._state = "not started"  # -> "running" <-> "crashed"; -> "closing" -> "closed"
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._outbox: list[tuple[str, tuple[Any, ...]]] = []
        self._at_process = 0  # requests written and not answered yet
        self._buffer = bytearray()
        self._gone: asyncio.Future[None] | None = None
        self._restarting: asyncio.Future[None] | None = None
        self.commits = 0

    @property
    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    async def start(self) -> None:
        if self._state != "not started":
            raise BackendError(f"the SQLite store at {self._path} was already started")
        await self._spawn(failed="closed")

    async def _spawn(self, failed: str) -> None:
        """Start the process; if it cannot open the database, the state is ``failed``."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        self._pending = collections.deque([opened])
        self._at_process = 1  # the opening, answered once the database is open
        self._buffer = bytearray()
        self._gone = loop.create_future()
        self._transport, _ = await loop.subprocess_exec(
            lambda: _Protocol(self), sys.executable, "-I", "-c", _BOOT, _ROOT, self._path,
            self._synchronous, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
        self._stdin = self._transport.get_pipe_transport(0)  # type: ignore[assignment]
        self._state = "running"
        try:
            await opened
        except BaseException as exc:
            self._state = "closing"
            await self._stop()
            self._state = failed
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"could not open the SQLite store at {self._path}: "
                                   f"{exc}") from exc
            raise

    async def call(self, name: str, *args: Any) -> Any:
        """Run the operation ``name`` of ``_sqlite_ops``; its result once committed."""
        if self._state == "crashed":
            await self._restart()
        if self._state != "running":
            raise BackendError(f"the SQLite store at {self._path} is {self._state}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        self._outbox.append((name, args))
        if len(self._outbox) == 1 and not self._at_process:
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            return await future
        except sqlite3.Error as exc:
            raise BackendError(f"the SQLite store at {self._path} failed: {exc}") from exc

    def _flush(self) -> None:
        if self._outbox and self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(frame(self._outbox))
            self._at_process += len(self._outbox)
        self._outbox = []

    async def _restart(self) -> None:
        if self._restarting is None:
            self._restarting = asyncio.ensure_future(self._spawn(failed="crashed"))
            self._restarting.add_done_callback(lambda _: setattr(self, "_restarting", None))
        await asyncio.shield(self._restarting)

    async def close(self) -> None:
        """Let the process answer and commit everything sent, then stop it."""
        if self._state in ("closing", "closed"):
            return
        running, self._state = self._state == "running", "closing"
        if running:
            self._flush()
        await self._stop()
        self._state = "closed"

    async def _stop(self) -> None:
        if self._stdin is not None:
            self._stdin.close()  # end of input: the process answers what it read, exits
        if self._gone is not None:
            await asyncio.shield(self._gone)
        if self._transport is not None:
            self._transport.close()

    # -- what the process says -----------------------------------------------------------

    def _received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _LENGTH.size:
            size = _LENGTH.unpack_from(buffer)[0]
            if len(buffer) < _LENGTH.size + size:
                return
            committed, results = pickle.loads(buffer[_LENGTH.size:_LENGTH.size + size])
            del buffer[:_LENGTH.size + size]
            self.commits += committed
            self._at_process -= len(results)
            for ok, value in results:
                future = self._pending.popleft()
                if future.cancelled():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            if not self._at_process and self._outbox:
                self._flush()  # what waited for the batch that was at the process

    def _lost(self) -> None:
        """The process ended and its pipes are closed: what it did not answer failed."""
        code = self._transport.get_returncode() if self._transport is not None else None
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(BackendError(
                    f"the SQLite store's process for {self._path} ended (exit code {code}) "
                    "before answering"))
        self._outbox = []
        self._at_process = 0
        if self._state == "running":
            self._state = "crashed"
        if self._transport is not None:
            self._transport.close()
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.channel._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.channel._lost()
