"""The native WebSocket transport, on tornado.websocket: no SockJS on either side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.websocket

from ._backlog import too_slow
from ._write import FrameCache, text_frame, write
from .base import Connection, RequestInfo

if TYPE_CHECKING:
    from ..chat import Chat

__all__ = ["WebSocketTransport"]


class WebSocketTransport(tornado.websocket.WebSocketHandler):
    """Carries chitchat frames as WebSocket text messages.

    The Origin is checked at the handshake (a refused one gets HTTP 403). Text frames
    over four times ``max_frame_size`` are not even read: Tornado closes with 1009;
    smaller oversized frames get error 4002 like on every transport.
    """

    name = "websocket"

    def initialize(self, chat: Chat) -> None:
        self.chat = chat
        self._connection: Connection | None = None

    @property
    def max_message_size(self) -> int:
        return 4 * self.chat.limits.max_frame_size

    def check_origin(self, origin: str) -> bool:
        return self.chat.origins.allows(origin, self.request.headers.get("Host"))

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        headers = self.request.headers
        info = RequestInfo(self.request.remote_ip, headers, self.request.path)
        self._connection = self.chat.open(self, info)

    def on_message(self, message: str | bytes) -> None:
        if self._connection is not None:
            self._connection.frame_received(message if isinstance(message, str) else "")

    def on_close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.closed()

    def send(self, frame: str) -> None:
        # The fan-out's hot path: one write of bytes built once per frame (see _write).
        ws = self.ws_connection
        if ws is None or ws.is_closing():
            return
        stream = ws.stream
        if stream is None:
            return
        if too_slow(stream, self.chat.limits.max_backlog, self._connection):
            # A close frame would queue behind the backlog it never reads: drop the socket.
            stream.close()
            return
        if getattr(ws, "_compressor", None) is not None:  # permessage-deflate: per client
            self.write_message(frame)
        else:
            write(stream, _frames.get(frame))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        super().close(code, reason)


# Every receiver of a fan-out gets the same frame object: build its bytes once.
_frames = FrameCache(lambda text: text_frame(text.encode()))
