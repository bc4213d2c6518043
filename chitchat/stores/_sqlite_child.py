"""SQLiteStore's helper process: it owns the connection and commits requests in groups.

The event loop (``_sqlite_channel``) writes frames of requests to the process's stdin;
the process answers on its stdout, one frame per batch, in request order. A frame is a
4-byte big-endian length and a pickle: requests are ``[(name, args), ...]``; an answer
is ``(committed, [(ok, value or exception), ...])``.

**Group commit**: the process reads everything queued in the pipe, runs it in ONE
transaction (each write in a savepoint of its own, consecutive appends together), and
answers only after COMMIT. While it commits (the fsync), new requests queue in the pipe
and become the next batch: the more callers, the fewer commits per request.

If ``BEGIN`` or ``COMMIT`` fails (the database is locked or full, an I/O error), every
request of the batch fails and nothing of it is kept: nothing was answered yet and
nothing (no seq counter) lives outside the database, so the log has no hole. If a
request's error makes SQLite roll the whole transaction back, the batch's requests run
again one transaction each, so that only the one at fault fails.

The process stops when its stdin closes (the store closed, or the server died): it
finishes what it has read, answers, and exits. It ignores SIGINT and SIGTERM, which a
terminal or a service manager sends the whole process group: the server closes it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sqlite3
import struct
import sys
from typing import Any

from . import _sqlite_ops as ops

__all__ = ["MAX_BATCH", "frame", "serve"]

#: Most requests in one transaction: bounds how long the first of a burst waits.
MAX_BATCH = 1000
_LENGTH = struct.Struct(">I")

Request = tuple[str, tuple[Any, ...]]
Result = tuple[bool, Any]


def frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class _Frames:
    """Reads whole frames of requests from a file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def batch(self) -> list[Request] | None:
        """Every request that has arrived, waiting for one (about MAX_BATCH at most: whole
        frames are taken); None at the end of the input."""
        requests: list[Request] = []
        while not requests or self._complete():
            while not self._complete():
                data = os.read(self.fd, 1 << 20)  # what the pipe holds, or wait for it
                if not data:
                    return requests or None
                self.buffer += data
            size = _LENGTH.unpack_from(self.buffer)[0]
            requests += pickle.loads(self.buffer[_LENGTH.size:_LENGTH.size + size])
            del self.buffer[:_LENGTH.size + size]
            if len(requests) >= MAX_BATCH:
                break
        return requests

    def _complete(self) -> bool:
        if len(self.buffer) < _LENGTH.size:
            return False
        size: int = _LENGTH.unpack_from(self.buffer)[0]
        return len(self.buffer) >= _LENGTH.size + size


def serve(path: str, synchronous: str) -> None:
    """The process's life: open the database, answer batches until stdin closes."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames goes to the event loop
    try:
        connection = ops.open_database(path, synchronous)
    except Exception as exc:
        _write(out, (False, [(False, exc)]))
        return
    _write(out, (False, [(True, None)]))  # the answer to start()
    frames = _Frames(sys.stdin.fileno())
    try:
        while (requests := frames.batch()) is not None:
            _write(out, run(connection, requests))
    except BrokenPipeError:  # the server is gone: nobody to answer
        pass
    finally:
        connection.close()


def _write(out: Any, answer: tuple[bool, list[Result]]) -> None:
    try:
        data = frame(answer)
    except Exception:  # an exception that does not pickle: say what it was
        committed, results = answer
        data = frame((committed, [(ok, value if ok else RuntimeError(repr(value)))
                                  for ok, value in results]))
    out.write(data)
    out.flush()


def run(connection: sqlite3.Connection, requests: list[Request]) -> tuple[bool, list[Result]]:
    """Run ``requests`` in one transaction: (whether it committed, their results)."""
    results: list[Result] = []
    try:
        connection.execute("BEGIN IMMEDIATE")
        for group in _groups(requests):
            results += _apply(connection, group)
            if not connection.in_transaction:
                # This request's error made SQLite roll the whole transaction back:
                # the others go again, each in a transaction of its own.
                if len(requests) > 1:
                    return _one_by_one(connection, requests)
                error = results[-1][1] if not results[-1][0] else sqlite3.OperationalError(
                    "the transaction was rolled back")
                return False, [(False, error)]
        connection.execute("COMMIT")
    except Exception as exc:  # sqlite3.Error, or a bug: every caller gets an answer
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        return False, [(False, exc)] * len(requests)
    return True, results


def _one_by_one(connection: sqlite3.Connection,
                requests: list[Request]) -> tuple[bool, list[Result]]:
    committed, results = False, []
    for request in requests:
        done, result = run(connection, [request])
        committed = committed or done
        results += result
    return committed, results


def _groups(requests: list[Request]) -> list[list[Request]]:
    """Runs of consecutive requests that ``ops.GROUPED`` runs together; others alone."""
    groups: list[list[Request]] = []
    for request in requests:
        if groups and request[0] in ops.GROUPED and groups[-1][0][0] == request[0]:
            groups[-1].append(request)
        else:
            groups.append([request])
    return groups


def _apply(connection: sqlite3.Connection, group: list[Request]) -> list[Result]:
    """Run one group inside the batch's transaction; an error undoes only the group,
    and a group that fails runs again request by request, so that only those at fault
    fail."""
    name = group[0][0]
    if len(group) == 1 and name in ops.READS:
        try:
            return [(True, ops.OPS[name](connection, *group[0][1]))]
        except Exception as exc:
            return [(False, exc)]
    connection.execute("SAVEPOINT op")
    try:
        if len(group) == 1:
            values = [ops.OPS[name](connection, *group[0][1])]
        else:
            values = ops.GROUPED[name](connection, [args for _, args in group])
    except Exception as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK TO op")
            connection.execute("RELEASE op")
        if len(group) > 1 and connection.in_transaction:
            return [result for request in group for result in _apply(connection, [request])]
        return [(False, exc)] * len(group)
    connection.execute("RELEASE op")
    return [(True, value) for value in values]
