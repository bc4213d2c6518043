"""Test your handlers without sockets: an in-process transport and a client for it.

``InProcessTransport`` is a complete chitchat transport written only against
``chitchat.transports.base`` (docs/transports.md walks through it). ``TestClient`` drives
it the way the browser client drives SockJS, so a test exercises your real
``@chat.authorize``, ``@chat.message``, ``@chat.join``, ``@chat.edit`` and
``@chat.remove`` handlers and the real delivery path::

    async def test_shouting_is_lowered():
        chat = make_my_chat()
        ann = await TestClient.connect(chat, {"token": "ann-token"})
        bob = await TestClient.connect(chat, {"token": "bob-token"})
        message = await ann.send({"text": "HELLO"})
        assert message["data"] == {"text": "hello"}
        assert (await bob.next_messages())[-1] == message
        with pytest.raises(Rejected):
            await ann.send({"text": "x" * 10_000})
        await ann.close()
        await bob.close()

Everything here must run on the event loop (inside an async test).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import protocol
from .errors import ChitchatError
from .transports.base import Connection, RequestInfo

if TYPE_CHECKING:
    from .chat import Chat

__all__ = ["InProcessTransport", "Rejected", "TestClient", "Unauthorized"]

TIMEOUT = 5.0


class Unauthorized(ChitchatError):
    """The authorize handler called ``bad(meta)``; ``meta`` is what it gave."""

    def __init__(self, meta: Any) -> None:
        super().__init__(f"unauthorized: {meta!r}")
        self.meta = meta


class Rejected(ChitchatError):
    """The message handler called ``bad(meta)`` (or the server refused the frame)."""

    def __init__(self, meta: Any) -> None:
        super().__init__(f"rejected: {meta!r}")
        self.meta = meta


class InProcessTransport:
    """A transport whose "socket" is a queue of decoded frames in the same process.

    The chat core calls ``send`` and ``close`` (the ``Transport`` interface); the test
    side calls ``deliver`` to play the client and reads ``frames``.
    """

    name = "in-process"

    def __init__(self, chat: Chat, headers: Mapping[str, str] | None = None) -> None:
        #: Frames from the server, decoded; ``None`` once the connection has closed.
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.close_reason: tuple[int, str] | None = None
        self._connection: Connection | None = chat.open(
            self, RequestInfo("127.0.0.1", dict(headers or {}), "/in-process")
        )

    # -- transports.base.Transport ------------------------------------------------------

    def send(self, frame: str) -> None:
        if self.close_reason is None:
            # Decoding here proves every frame the core sends is valid JSON.
            self.frames.put_nowait(json.loads(frame))

    def close(self, code: int, reason: str) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = (code, reason)
        # Everything sent so far is already in ``frames``: close on the next turn,
        # outside the core's call stack, as a real transport would.
        asyncio.get_running_loop().call_soon(self._closed)

    # -- the client side ----------------------------------------------------------------

    def deliver(self, text: str) -> None:
        """Hand one text frame to the server, as if it arrived from the client."""
        if self._connection is not None:
            self._connection.frame_received(text)

    def disconnect(self) -> None:
        """The client goes away."""
        if self.close_reason is None:
            self.close_reason = (1000, "client left")
        self._closed()

    def _closed(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self.frames.put_nowait(None)
            connection.closed()


class TestClient:
    """One user's connection to a Chat, in-process. Make it with ``await connect()``.

    ``messages`` holds every message delivered (history included, every room) and
    ``events`` every other frame from the server (presence, typing, read, edit, remove,
    reactions, reset, joined, removed), in order. Requests raise ``Rejected(meta)``
    when refused: the handler's ``bad(meta)``, a server refusal, or an error frame
    (then ``meta`` is ``{"code", "reason"}``).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, transport: InProcessTransport) -> None:
        self.transport = transport
        self.user: str | None = None
        self.meta: Any = None
        #: The default room's info from the welcome frame (None without one).
        self.room: dict[str, Any] | None = None
        self.messages: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._refs = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, chat: Chat, auth: Any = None, *, origin: str | None = None,
        timeout: float = TIMEOUT,
    ) -> TestClient:
        """Connect and authorize with ``auth``; raises ``Unauthorized`` if refused."""
        headers = {"Origin": origin} if origin else {}
        client = cls(InProcessTransport(chat, headers))
        client.transport.deliver(protocol.dumps({"t": "auth", "v": 1, "data": auth}))
        first = await asyncio.wait_for(client.transport.frames.get(), timeout)
        if first is None:
            raise ChitchatError(f"closed before welcome: {client.transport.close_reason}")
        if first["t"] == "unauthorized":
            raise Unauthorized(first["meta"])
        if first["t"] != "welcome":
            raise ChitchatError(f"expected welcome, got {first!r}")
        client.user, client.meta, client.room = first["user"], first["meta"], first.get("room")
        client._reader = asyncio.get_running_loop().create_task(client._read())
        return client

    async def request(self, frame: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send ``frame`` (a ``ref`` is added) and return the ``ack`` frame."""
        ref = next(self._refs)
        answer = self._answers[ref] = asyncio.get_running_loop().create_future()
        self.transport.deliver(protocol.dumps({**frame, "ref": ref}))
        try:
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._answers.pop(ref, None)

    async def send(self, data: dict[str, Any], room: str | None = None, cid: str | None = None,
                   timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send a message (to the default room if ``room`` is None); returns it as accepted."""
        frame: dict[str, Any] = {"t": "send", "data": data}
        if room is not None:
            frame["room"] = room
        if cid is not None:
            frame["cid"] = cid
        return (await self.request(frame, timeout))["msg"]  # type: ignore[no-any-return]

    async def join(self, room: str, data: Any = None) -> dict[str, Any]:
        """Join ``room``; returns the room info (``meta``, ``members``, ``seq``, ...)."""
        return await self.request({"t": "join", "room": room, "data": data})

    async def leave(self, room: str) -> None:
        await self.request({"t": "leave", "room": room})

    async def history(self, room: str, before: int | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        frame: dict[str, Any] = {"t": "history", "room": room, "limit": limit}
        if before is not None:
            frame["before"] = before
        return (await self.request(frame))["list"]  # type: ignore[no-any-return]

    async def mark_read(self, room: str, seq: int) -> int:
        return (await self.request({"t": "read", "room": room, "seq": seq}))["seq"]  # type: ignore[no-any-return]

    async def edit(self, room: str, message_id: str, data: dict[str, Any]) -> dict[str, Any]:
        frame = {"t": "edit", "room": room, "id": message_id, "data": data}
        return (await self.request(frame))["msg"]  # type: ignore[no-any-return]

    async def remove(self, room: str, message_id: str) -> None:
        await self.request({"t": "remove", "room": room, "id": message_id})

    async def react(self, room: str, message_id: str, emoji: str) -> dict[str, list[str]]:
        frame = {"t": "react", "room": room, "id": message_id, "emoji": emoji}
        return (await self.request(frame))["reactions"]  # type: ignore[no-any-return]

    def typing(self, room: str) -> None:
        self.transport.deliver(protocol.dumps({"t": "typing", "room": room}))

    async def next_messages(self, count: int = 1, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages have arrived in all; return them all."""
        async def enough() -> None:
            while len(self.messages) < count:
                self._new.clear()
                await self._new.wait()

        await asyncio.wait_for(enough(), timeout)
        return list(self.messages)

    async def close(self) -> None:
        """Leave, as a browser tab closing would."""
        self.transport.disconnect()
        if self._reader is not None:
            await self._reader

    async def _read(self) -> None:
        while (frame := await self.transport.frames.get()) is not None:
            kind = frame["t"]
            if kind == "messages":
                self.messages.extend(frame["list"])
                self._new.set()
            elif kind == "ack":
                self._answer(frame["ref"], frame)
            elif kind == "nack":
                self._answer(frame["ref"], Rejected(frame["meta"]))
            elif kind == "error" and "ref" in frame:
                self._answer(frame["ref"], Rejected({"code": frame["code"],
                                                     "reason": frame["reason"]}))
            elif kind == "ping":
                self.transport.deliver(protocol.PONG)
            elif kind not in ("pong", "error"):
                self.events.append(frame)
        for future in self._answers.values():
            if not future.done():
                future.set_exception(ChitchatError("the connection closed"))

    def _answer(self, ref: int, result: dict[str, Any] | Rejected) -> None:
        future = self._answers.get(ref)
        if future is None or future.done():
            return
        if isinstance(result, Rejected):
            future.set_exception(result)
        else:
            future.set_result(result)
