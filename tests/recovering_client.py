"""A test client that recovers the way the browser client does, over real sockets.

It keeps, per room, the epoch and the highest seq it has seen; after every lost
connection it reconnects, authorizes with ``since`` for the default room, re-joins its
other rooms with ``since``, and re-sends every unanswered send with the same ``cid``.
It records every room entry it receives, so a test can check what the server promises:
each room's entries arrive in seq order, none twice, none missing, and every send that
was answered is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
from typing import Any

from clients import TRANSPORTS


class RecoveringClient:
    def __init__(self, base_url: str, name: str, rooms: list[str], kind: str) -> None:
        self.base_url = base_url
        self.name = name
        self.kind = kind
        self.rooms = rooms  # besides the default room
        self.positions: dict[str, dict[str, Any]] = {}  # room -> {"epoch", "seq"}
        #: room -> every message received, in arrival order (each seq at most once).
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.duplicates: list[tuple[str, int]] = []
        self.resets: list[str] = []
        self.reconnects = 0
        self._refs = itertools.count(1)
        self._unanswered: dict[str, tuple[str, dict[str, Any], asyncio.Future[Any]]] = {}
        self._by_ref: dict[int, str] = {}
        self._connection: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._stopped = False
        self.online = asyncio.Event()

    # -- the test's side ----------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def send(self, room: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send until it is answered (across reconnects); returns the stored message."""
        cid = secrets.token_hex(8)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._unanswered[cid] = (room, data, future)
        if self.online.is_set():
            self._write_send(cid)
        return await future  # type: ignore[no-any-return]

    async def stop(self) -> None:
        self._stopped = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.aclose()

    # -- the connection loop ------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopped:
            try:
                await self._session()
            except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
            except Exception as exc:  # a dropped SockJS poll, a refused socket
                if "closed" not in str(exc).lower() and "refused" not in str(exc).lower():
                    raise
            self.online.clear()
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await self._connection.aclose()
            self.reconnects += 1
            await asyncio.sleep(random.uniform(0.02, 0.2))  # jitter, as the browser does

    async def _session(self) -> None:
        connection = self._connection = TRANSPORTS[self.kind](self.base_url)
        await connection.connect()
        auth: dict[str, Any] = {"t": "auth", "v": 1,
                                "data": {"name": self.name, "token": "secret-" + self.name}}
        if "main" in self.positions:
            auth["since"] = self.positions["main"]
        connection.send(auth)
        while True:
            frame = await connection.recv(timeout=10)
            if frame["t"] == "welcome":
                break
            if frame["t"] == "error" and frame.get("fatal"):
                return
        if frame["room"] is not None:
            self._position(frame["room"]["room"], frame["room"]["epoch"], None)
        for room in self.rooms:
            join: dict[str, Any] = {"t": "join", "ref": next(self._refs), "room": room}
            if room in self.positions:
                join["since"] = self.positions[room]
            connection.send(join)
        for cid in list(self._unanswered):
            self._write_send(cid)
        self.online.set()
        while True:
            try:
                frame = await connection.recv(timeout=3)
            except TimeoutError:
                if connection.close_reason is not None:
                    return
                connection.send({"t": "ping"})
                continue
            self._received(frame)
            if frame["t"] == "error" and frame.get("fatal"):
                return

    def _write_send(self, cid: str) -> None:
        room, data, _ = self._unanswered[cid]
        ref = next(self._refs)
        self._by_ref[ref] = cid
        with contextlib.suppress(Exception):
            self._connection.send({"t": "send", "ref": ref, "room": room, "cid": cid,
                                   "data": data})

    def _position(self, room: str, epoch: str, seq: int | None) -> None:
        known = self.positions.get(room)
        if known is None or known["epoch"] != epoch:
            self.positions[room] = {"epoch": epoch, "seq": 0}
        if seq is not None:
            self.positions[room]["seq"] = max(self.positions[room]["seq"], seq)

    def _received(self, frame: dict[str, Any]) -> None:
        kind = frame["t"]
        if kind == "ping":
            self._connection.send({"t": "pong"})
        elif kind == "reset":
            self.resets.append(frame["room"])
            self.seen[frame["room"]] = []
            self.positions[frame["room"]] = {"epoch": frame["epoch"], "seq": 0}
        elif kind == "messages":
            for message in frame["list"]:
                room = message["room"]
                if room is None:
                    continue
                known = self.positions.setdefault(room, {"epoch": "", "seq": 0})
                if message["seq"] <= known["seq"]:
                    self.duplicates.append((room, message["seq"]))
                    continue
                known["seq"] = message["seq"]
                self.seen.setdefault(room, []).append(message)
        elif kind == "ack" and "room" in frame and "epoch" in frame:  # a join's answer
            self._position(frame["room"], frame["epoch"], frame["seq"])
        elif kind in ("ack", "nack", "error") and frame.get("ref") in self._by_ref:
            cid = self._by_ref.pop(frame["ref"])
            entry = self._unanswered.get(cid)
            if entry is None:
                return
            if kind == "ack":
                del self._unanswered[cid]
                entry[2].set_result(frame["msg"])
            elif kind == "nack" and frame["meta"] != {"error": "unavailable"}:
                del self._unanswered[cid]
                entry[2].set_exception(AssertionError(f"refused: {frame}"))
            # errors (a flood, a room not yet re-joined) and "unavailable": sent again
            # after the next reconnect, as the browser client's outbox does
