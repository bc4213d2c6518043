"""Writing one pre-built WebSocket frame to a Tornado IOStream, cheaply.

A fan-out hands the same frame text to every receiver, so the transports build the
WebSocket frame bytes once (``FrameCache``) and each receiver costs one write of those
bytes. ``write`` skips Tornado's per-call bookkeeping (``WebSocketHandler.write_message``
wraps each write in a coroutine and a Task; ``IOStream.write`` makes a Future) when
nothing is queued ahead: it hands the bytes straight to the socket, and only what the
socket does not take goes through ``IOStream.write``. Order is kept, since the direct
path is taken only when the stream's own buffer is empty. Besides the time, this keeps
the delivery path free of allocations that would wake the cyclic garbage collector.
"""

from __future__ import annotations

import struct
from typing import Any

from tornado.iostream import IOStream

__all__ = ["FrameCache", "text_frame", "write"]


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2), as a
    server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class FrameCache:
    """Remembers the bytes built for the last frame text seen (by identity: the hub hands
    one ``str`` object to every listener of a channel)."""

    __slots__ = ("_build", "_bytes", "_text")

    def __init__(self, build: Any) -> None:
        self._build = build
        self._text: str | None = None
        self._bytes = b""

    def get(self, text: str) -> bytes:
        if self._text is not text:
            self._bytes = self._build(text)
            self._text = text
        return self._bytes


def write(stream: IOStream, data: bytes) -> None:
    """Write ``data`` after everything already written to ``stream``.

    The caller has checked that the stream is open. Errors are left to the stream: a
    failed direct send falls back to ``IOStream.write``, which closes the stream (and so
    the connection, through its close callback) the way Tornado always does.
    """
    if not stream._write_buffer and type(stream) is IOStream:
        try:
            sent = stream.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # let IOStream.write meet the error and close the stream
        if sent == len(data):
            return
        data = data[sent:]
    stream.write(data)
