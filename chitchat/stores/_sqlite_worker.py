"""The thread that owns a SQLite connection and commits in groups (for ``SQLiteStore``).

Every operation of a ``SQLiteStore`` is a function of the connection that the event
loop queues here. One thread takes everything queued, runs it in ONE transaction, each
write inside its own savepoint (so an operation that fails undoes only itself), commits,
and only then resolves the callers' futures, in queue order, with one
``call_soon_threadsafe`` per batch. While a batch commits (its fsync), new operations
queue up and become the next batch: the more callers, the fewer commits per operation.
The event loop never waits on the disk.

If ``BEGIN`` or ``COMMIT`` fails (the database is locked or full, an I/O error), every
operation of the batch fails and nothing of it is kept: no caller was answered yet, and
nothing (no seq counter) lives outside the database, so the log has no hole. If an
operation's error makes SQLite roll the whole transaction back, the batch's operations
run again one transaction each, so that only the one at fault fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import BackendError

__all__ = ["MAX_BATCH", "Worker"]

P = ParamSpec("P")
T = TypeVar("T")

#: Most operations in one transaction: bounds how long the first of a burst waits.
MAX_BATCH = 1000

Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


class _Op:
    __slots__ = ("args", "fn", "future", "kwargs", "write")

    def __init__(self, future: asyncio.Future[Any], write: bool, fn: Callable[..., Any],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.future = future
        self.write = write
        self.fn = fn
        self.args = args
        self.kwargs = kwargs


class Worker:
    """Runs functions of one connection on one thread, committing them in groups.

    ``connect`` opens the connection (on the worker thread, in ``start``). ``write`` and
    ``read`` are called from the event loop that called ``start``; each returns once the
    batch that ran the function has committed. ``commits`` counts the transactions.
    """

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._name = name  # the database's path, for errors
        self._connect = connect
        self._queue: SimpleQueue[_Op | None] = SimpleQueue()  # None: stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "not started"  # -> "running" -> "closed"
        self._stopped: asyncio.Future[None] | None = None
        self.commits = 0

    async def start(self) -> None:
        if self._state != "not started":
            raise BackendError(f"the SQLite store at {self._name} was already started")
        self._loop = loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        threading.Thread(target=self._run, args=(started,), daemon=True,
                         name="chitchat-sqlite").start()
        try:
            await started
        except sqlite3.Error as exc:
            self._state = "closed"
            raise BackendError(f"could not open the SQLite store at {self._name}: {exc}") from exc
        except BaseException:
            self._state = "closed"
            raise
        self._state = "running"

    async def close(self) -> None:
        """Commit what is queued, then close the connection; later calls raise."""
        running, self._state = self._state == "running", "closed"
        if running and self._stopped is not None:
            self._queue.put(None)
            try:
                await asyncio.shield(self._stopped)
            except sqlite3.Error as exc:
                raise BackendError(f"closing the SQLite store at {self._name}: {exc}") from exc

    async def write(self, fn: Callable[Concatenate[sqlite3.Connection, P], T],
                    *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)`` in the next batch, in a savepoint of its own."""
        return await self._call(True, fn, args, kwargs)

    async def read(self, fn: Callable[Concatenate[sqlite3.Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)``, which must not write, in the next batch: it sees
        every write queued before it (and only what is committed reaches the caller)."""
        return await self._call(False, fn, args, kwargs)

    async def _call(self, write: bool, fn: Callable[..., T], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> T:
        if self._state != "running" or self._loop is None:
            raise BackendError(f"the SQLite store at {self._name} is {self._state}")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Op(future, write, fn, args, kwargs))
        try:
            return await future
        except sqlite3.Error as exc:
            raise BackendError(f"the SQLite store at {self._name} failed: {exc}") from exc

    # -- the worker thread --------------------------------------------------------------

    def _run(self, started: asyncio.Future[None]) -> None:
        try:
            connection = self._connect()
        except BaseException as exc:
            self._settle([(started, None, exc)])
            return
        self._settle([(started, None, None)])
        error: BaseException | None = None
        try:
            stop = False
            while not stop:
                batch: list[_Op] = []
                item = self._queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= MAX_BATCH or self._queue.empty():
                        break
                    item = self._queue.get()
                stop = item is None  # close() queues nothing after its stop
                if batch:
                    self._settle(self._commit(connection, batch))
        finally:
            try:
                connection.close()
            except sqlite3.Error as exc:
                error = exc
            assert self._stopped is not None
            self._settle([(self._stopped, None, error)])

    def _commit(self, connection: sqlite3.Connection, batch: list[_Op]) -> list[Result]:
        results: list[Result] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in batch:
                results.append(_apply(connection, op))
                if not connection.in_transaction:
                    # This operation's error made SQLite roll the whole transaction
                    # back: the others go again, each in a transaction of its own.
                    if len(batch) > 1:
                        return [r for op in batch for r in self._commit(connection, [op])]
                    error = results[-1][2] or sqlite3.OperationalError("rolled back")
                    return [(op.future, None, error)]
            connection.execute("COMMIT")
        except Exception as exc:  # sqlite3.Error, or a bug: no caller may wait forever
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            return [(op.future, None, exc) for op in batch]
        self.commits += 1
        return results

    def _settle(self, results: list[Result]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(_settle, results)


def _apply(connection: sqlite3.Connection, op: _Op) -> Result:
    """Run one operation inside the batch's transaction; its error undoes only itself."""
    if not op.write:
        try:
            return op.future, op.fn(connection, *op.args, **op.kwargs), None
        except Exception as exc:
            return op.future, None, exc
    connection.execute("SAVEPOINT op")
    try:
        value = op.fn(connection, *op.args, **op.kwargs)
    except Exception as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK TO op")
            connection.execute("RELEASE op")
        return op.future, None, exc
    connection.execute("RELEASE op")
    return op.future, value, None


def _settle(results: list[Result]) -> None:
    """On the event loop: answer the callers of one batch, in queue order."""
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
