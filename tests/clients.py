"""Real-socket test clients that speak the chitchat protocol over each transport.

Each client exposes the same small API: ``await connect()``, ``send(frame)`` (a dict is
JSON-encoded, a str is sent as is), ``await recv()`` (the next decoded frame, or raises
``TimeoutError``), ``await closed()`` and ``close()``. They are deliberately dumb: they
only move text, so tests see exactly what the server sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect

TIMEOUT = 5.0


class _Base:
    def __init__(self, base_url: str, prefix: str = "/chat", origin: str | None = None) -> None:
        self.base_url = base_url
        self.prefix = prefix
        self.origin = origin
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.close_reason: Any = None
        self._closed = asyncio.Event()
        self._stash: list[Any] = []  # frames skipped by recv_type, in arrival order

    def _headers(self) -> dict[str, str]:
        return {"Origin": self.origin} if self.origin else {}

    def _got(self, text: str) -> None:
        self.frames.put_nowait(json.loads(text))

    async def recv(self, timeout: float = TIMEOUT) -> Any:
        """The next frame, in arrival order (including ones recv_type skipped)."""
        if self._stash:
            return self._stash.pop(0)
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def recv_type(self, kind: str, timeout: float = TIMEOUT) -> Any:
        """The next frame of type ``kind``; pings are dropped, other frames kept for
        later ``recv``/``recv_type`` calls (so an ack and a delivery may come in any
        order)."""
        for i, frame in enumerate(self._stash):
            if frame.get("t") == kind:
                return self._stash.pop(i)
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if frame.get("t") == kind:
                return frame
            if frame.get("t") != "ping":
                self._stash.append(frame)

    async def recv_where(self, match: Any, timeout: float = TIMEOUT) -> Any:
        """The next frame for which ``match(frame)`` is true; others are kept, as in
        ``recv_type``."""
        for i, frame in enumerate(self._stash):
            if match(frame):
                return self._stash.pop(i)
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if match(frame):
                return frame
            if frame.get("t") != "ping":
                self._stash.append(frame)

    async def request(self, frame: dict[str, Any], timeout: float = TIMEOUT) -> Any:
        """Send a frame with a ``ref``; return its answer (ack, nack or error)."""
        self.send(frame)
        ref = frame["ref"]
        return await self.recv_where(
            lambda f: f.get("ref") == ref and f.get("t") in ("ack", "nack", "error"), timeout)

    def pending(self) -> list[Any]:
        """Frames already received and not yet taken (pings dropped)."""
        while not self.frames.empty():
            frame = self.frames.get_nowait()
            if frame.get("t") != "ping":
                self._stash.append(frame)
        return list(self._stash)

    async def closed(self, timeout: float = TIMEOUT) -> Any:
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.close_reason

    async def auth(self, data: Any) -> Any:
        self.send({"t": "auth", "v": 1, "data": data})
        return await self.recv()

    def send(self, frame: Any) -> None:
        raise NotImplementedError


class NativeWebSocketClient(_Base):
    """chitchat's own WebSocket endpoint, ``<prefix>/ws``."""

    path = "/ws"

    async def connect(self) -> None:
        url = self.base_url.replace("http", "ws", 1) + self.prefix + self.path
        self.ws = await websocket_connect(
            HTTPRequest(url, headers=self._headers()), on_message_callback=self._on_message
        )

    def _on_message(self, message: str | bytes | None) -> None:
        if message is None:
            self.close_reason = (self.ws.close_code, self.ws.close_reason)
            self._closed.set()
        else:
            self._on_text(message if isinstance(message, str) else message.decode())

    def _on_text(self, text: str) -> None:
        self._got(text)

    def send(self, frame: Any) -> None:
        self._write(frame if isinstance(frame, str) else json.dumps(frame))

    def _write(self, text: str) -> None:
        # If the server closed first, tests look at what it said.
        with contextlib.suppress(WebSocketClosedError):
            self.ws.write_message(text)

    async def aclose(self) -> None:
        # Wait for the server's side to close too (it closes its socket before the
        # client sees the end): a test that ends first leaves an unclosed server socket
        # behind, reported (ResourceWarning) in whichever later test collects it.
        self.ws.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), TIMEOUT)


class SockJSWebSocketClient(NativeWebSocketClient):
    """SockJS over its websocket transport: ``<prefix>/<server>/<session>/websocket``."""

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"/000/{secrets.token_hex(4)}/websocket"

    def _on_text(self, text: str) -> None:
        _sockjs_frame(self, text)

    def send(self, frame: Any) -> None:
        self._write(json.dumps([frame if isinstance(frame, str) else json.dumps(frame)]))


class XhrPollingClient(_Base):
    """SockJS over xhr-polling: a POST per poll, a POST per send."""

    async def connect(self) -> None:
        self.http = AsyncHTTPClient(force_instance=True)
        self.url = f"{self.base_url}{self.prefix}/000/{secrets.token_hex(4)}"
        self._sending: asyncio.Task[None] | None = None
        opened = await self._post("/xhr", b"")
        assert opened.strip() == "o", opened
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _post(self, path: str, body: bytes) -> str:
        if self._closed.is_set() and path != "/xhr":
            return ""
        response = await self.http.fetch(
            self.url + path, method="POST", body=body, headers=self._headers(),
            request_timeout=60, raise_error=True,
        )
        return response.body.decode()

    async def _poll(self) -> None:
        while not self._closed.is_set():
            try:
                text = await self._post("/xhr", b"")
            except Exception as exc:  # the server went away
                self.close_reason = ("error", str(exc))
                self._closed.set()
                return
            for line in text.splitlines():
                _sockjs_frame(self, line)

    def send(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        body = json.dumps([text]).encode()
        # Sends must reach the server in order: chain each POST after the previous one.
        previous = self._sending

        async def post() -> None:
            if previous is not None:
                await previous
            await self._post("/xhr_send", body)

        self._sending = asyncio.get_running_loop().create_task(post())

    async def aclose(self) -> None:
        self._closed.set()
        self._poller.cancel()
        await asyncio.gather(self._poller, return_exceptions=True)
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        self.http.close()


def _sockjs_frame(client: _Base, text: str) -> None:
    kind, body = text[:1], text[1:]
    if kind == "a":
        for item in json.loads(body):
            client._got(item)
    elif kind == "c":
        client.close_reason = tuple(json.loads(body))
        client._closed.set()


TRANSPORTS = {
    "sockjs-websocket": SockJSWebSocketClient,
    "sockjs-xhr-polling": XhrPollingClient,
    "native-websocket": NativeWebSocketClient,
}
