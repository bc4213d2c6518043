"""The interface between the chat core and whatever carries the frames.

A transport adapter does four things and nothing else:

1. When a client connects, it builds a ``RequestInfo`` and calls
   ``chat.open(transport, info)``, which returns the ``Connection`` (the session) that
   will receive this client's frames. The Origin check happens inside ``open``.
2. For every text frame received, it calls ``connection.frame_received(text)``.
3. When the client goes away (or after the transport closed itself), it calls
   ``connection.closed()`` exactly once.
4. It implements ``Transport``: the chat core calls ``send(frame)`` to write one text
   frame and ``close(code, reason)`` to end the connection *after* every frame sent so
   far has reached the client.

The core never imports a transport; transports import only this module and the
public ``Chat``. See docs/transports.md for a worked example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

__all__ = ["Connection", "RequestInfo", "Transport"]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the core may know about the request that opened a connection."""

    remote_ip: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    path: str = ""

    @property
    def origin(self) -> str | None:
        return self.headers.get("Origin")

    @property
    def host(self) -> str | None:
        return self.headers.get("Host")


class Transport(Protocol):
    """What the chat core calls on a transport. Both methods must not raise."""

    #: A short name for logs and docs, e.g. ``"sockjs-websocket"``.
    name: str

    def send(self, frame: str) -> None:
        """Write one text frame, in order after every earlier one. Frames sent after
        ``close`` are dropped."""

    def close(self, code: int, reason: str) -> None:
        """Close once every frame already sent has been flushed to the client. The
        transport then calls ``Connection.closed()`` (if it has not already)."""


class Connection(Protocol):
    """What a transport calls on the core's side of one connection."""

    def frame_received(self, text: str) -> None:
        """One text frame arrived from the client."""

    def closed(self) -> None:
        """The client is gone. Called once; nothing is sent after it."""
