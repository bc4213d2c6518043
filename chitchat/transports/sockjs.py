"""The SockJS transport: sockjs-tornado's SockJSConnection as a thin adapter.

What sockjs-tornado 1.0.7 gets wrong is covered here and in ``chitchat.router``:
``on_open`` cannot refuse a connection, so the core answers with a chat-level error
frame; closing in the same turn as a send breaks the HTTP polling transports, so a
close waits until the client has had time to fetch the last frames.

What it costs per connection is trimmed for websocket sessions (``ChitchatSession``):
no heartbeat timer of its own, and its open and close frames written as bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sockjs.tornado import SockJSConnection, SockJSRouter, proto  # type: ignore[import-untyped]
from sockjs.tornado import session as sockjs_session

from ._backlog import too_slow
from ._write import FrameCache, text_frame, write
from .base import Connection, RequestInfo

if TYPE_CHECKING:
    from ..chat import Chat

__all__ = ["ChitchatConnection", "ChitchatSession", "ChitchatSockJSRouter", "RefusalLog"]

log = logging.getLogger("chitchat.transports")

#: On HTTP transports the client fetches its last frames with its next poll. A close
#: waits until they are fetched (checking every CLOSE_CHECK seconds), at most this long.
CLOSE_GRACE = 5.0
CLOSE_CHECK = 0.05
#: Origins refused CORS are logged at most once per this many seconds, with a count: a
#: page that retries must not flood the log.
LOG_EVERY = 60.0


class ChitchatSockJSRouter(SockJSRouter):  # type: ignore[misc]
    """A SockJSRouter that knows its Chat, so that connections can find it, and keeps
    the log of origins refused CORS (``chitchat.cors``)."""

    def __init__(self, chat: Chat, prefix: str, settings: dict[str, Any]) -> None:
        self.chat = chat
        self.cors_refusals = RefusalLog()
        super().__init__(ChitchatConnection, prefix, settings, session_kls=ChitchatSession)


class RefusalLog:
    """Counts the requests whose origin was refused CORS (``chitchat.cors``); logs the
    latest, with the count, at most once per LOG_EVERY."""

    __slots__ = ("_next", "_unlogged")

    def __init__(self) -> None:
        self._unlogged = 0
        self._next = 0.0

    def refused(self, origin: str, path: str) -> None:
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._next:
            log.warning("no CORS headers for origin %r (%s; %d refused since the last "
                        "report): add it to allowed_origins if its pages may use the chat",
                        origin, path, self._unlogged)
            self._unlogged = 0
            self._next = now + LOG_EVERY


class ChitchatSession(sockjs_session.Session):  # type: ignore[misc]
    """sockjs-tornado's session, minus two per-connection costs on websocket sessions.

    - No SockJS heartbeat timer: sockjs-tornado arms one per session (a ``Callback``
      re-armed every ``heartbeat_delay``, 25 s, that keeps the closed session alive until
      it next fires). chitchat's own ping, every ``heartbeat`` seconds, keeps the
      connection busy and finds dead ones; sockjs-client ignores ``h`` frames. Polling
      and streaming sessions keep theirs (their requests must not sit idle).
    - The open frame ``o`` and the close frame ``c[code,"reason"]`` are written as
      WebSocket frame bytes (``_write.write``, in order with every other write), not
      through ``write_message``, which makes a Task per call. The bytes are the same.
    """

    def start_heartbeat(self) -> None:
        if _stream(self.handler) is None:
            super().start_heartbeat()

    def verify_state(self) -> None:
        stream = _stream(self.handler)
        if stream is None or self.state != sockjs_session.CONNECTING:
            super().verify_state()
            return
        write(stream, _OPEN_FRAME)
        sockjs_session.BaseSession.verify_state(self)

    def close(self, code: int = 3000, message: str = "Go away!") -> None:
        stream = _stream(self.handler)
        if stream is None or self.state == sockjs_session.CLOSED:
            super().close(code, message)
            return
        write(stream, text_frame(proto.disconnect(code, message).encode()))
        sockjs_session.BaseSession.close(self, code, message)


def _stream(handler: Any) -> Any:
    """The IOStream of a websocket session's open, uncompressed connection, or None (a
    polling or streaming session, or a connection that is closing)."""
    ws = getattr(handler, "ws_connection", None)
    if ws is None or ws.is_closing() or getattr(ws, "_compressor", None) is not None:
        return None
    return ws.stream


class ChitchatConnection(SockJSConnection):  # type: ignore[misc]
    """One SockJS session, adapted to the chat core's Transport interface."""

    name = "sockjs"
    _connection: Connection | None = None
    _closing: asyncio.Handle | None = None
    _close_deadline = 0.0

    # -- sockjs-tornado calls these -----------------------------------------------------

    def on_open(self, request: Any) -> None:
        self.name = "sockjs-" + self.session.transport_name
        info = RequestInfo(request.ip, request.headers, request.path)
        self._connection = self.session.server.chat.open(self, info)

    def on_message(self, message: Any) -> None:
        if self._connection is not None:
            # SockJS can carry any JSON value; a chitchat frame is always a string.
            self._connection.frame_received(message if isinstance(message, str) else "")

    def on_close(self) -> None:
        if self._closing is not None:
            self._closing.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.closed()

    # -- the chat core calls these (transports.base.Transport) --------------------------

    def send(self, frame: str, binary: bool = False) -> None:
        if self.is_closed:
            return
        session = self.session
        handler = session.handler
        # A websocket session writes straight to a socket that may not be read; polling
        # sessions buffer in send_queue and expire when the client stops polling.
        ws = getattr(handler, "ws_connection", None)
        stream = None if ws is None or ws.is_closing() else ws.stream
        if stream is not None and too_slow(
            stream, session.server.chat.limits.max_backlog, self._connection
        ):
            handler.abort_connection()
            return
        if not session.send_expects_json:
            # sockjs-tornado's raw <prefix>/websocket route: bare text, no SockJS framing.
            session.send_message(frame)
            return
        if stream is None or session.send_queue or getattr(ws, "_compressor", None):
            session.send_jsonified(_jsonified.get(frame))
            return
        # The fan-out's hot path: what sockjs-tornado would write (``a[<frame as a JSON
        # string>]`` in one WebSocket frame), built once per frame, one write per client.
        write(stream, _ws_frames.get(frame))

    def close(self, code: int = 3000, reason: str = "Go away!") -> None:
        if self.is_closed or self._closing is not None:
            return
        self._close_deadline = asyncio.get_running_loop().time() + CLOSE_GRACE
        self._close_when_flushed(code, reason)

    def _close_when_flushed(self, code: int, reason: str) -> None:
        # sockjs-tornado writes the close frame to the session's current handler; on the
        # polling transports a handler that has already answered (inactive) must not be
        # written to again, so wait until the queued frames are fetched and no handler is
        # half-finished.
        session = self.session
        loop = asyncio.get_running_loop()
        handler = session.handler
        idle = handler is None or handler.active
        queued = getattr(session, "send_queue", "")  # the raw websocket session has none
        if (idle and not queued) or loop.time() >= self._close_deadline:
            self._closing = loop.call_soon(session.close, code, reason)
        else:
            self._closing = loop.call_later(CLOSE_CHECK, self._close_when_flushed, code, reason)


_OPEN_FRAME = text_frame(proto.CONNECT.encode())

# A fan-out hands the same frame object to every receiver: encode it once for SockJS
# (polling transports), and build the whole WebSocket frame once (websocket sessions).
_jsonified = FrameCache(proto.json_encode)
_ws_frames = FrameCache(lambda text: text_frame(b"a[" + proto.json_encode(text).encode() + b"]"))
