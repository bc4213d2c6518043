"""This node's local fan-out: which connections listen on which channel.

The broker hands every payload for this node to ``Hub.deliver``. Payloads that arrive
in the same event-loop turn are coalesced per channel: at the end of the turn each
channel's payloads become ONE ``messages`` frame, built once, and that same frame object
is handed to every listener of the channel. Coalescing adds no delay: the flush runs as
soon as the loop has finished what is already ready.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from . import protocol

__all__ = ["Hub", "Listener"]


class Listener(Protocol):
    def deliver(self, frame: str) -> None:
        """Take one ``messages`` frame; must not raise."""


class Hub:
    """Channel -> listeners, with per-turn coalescing. Used only on the loop's thread."""

    def __init__(self) -> None:
        self._listeners: dict[str, dict[Listener, None]] = {}
        self._pending: dict[str, list[str]] = {}
        self._scheduled = False

    def add(self, channel: str, listener: Listener) -> bool:
        """Listen on ``channel``; True when it is the channel's first local listener."""
        listeners = self._listeners.setdefault(channel, {})
        first = not listeners
        listeners[listener] = None
        return first

    def remove(self, channel: str, listener: Listener) -> bool:
        """Stop listening; True when the channel has no local listener left."""
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return False
        del listeners[listener]
        if listeners:
            return False
        del self._listeners[channel]
        return True

    def listeners(self, channel: str) -> list[Listener]:
        return list(self._listeners.get(channel, ()))

    def deliver(self, channel: str, payload: str) -> None:
        """Queue one encoded message for ``channel``'s listeners (the broker's callback)."""
        if channel not in self._listeners:
            return
        pending = self._pending.get(channel)
        if pending is None:
            self._pending[channel] = [payload]
        else:
            pending.append(payload)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for channel, payloads in pending.items():
            listeners = self._listeners.get(channel)
            if not listeners:
                continue
            frame = protocol.messages(payloads)
            # Copy: a listener whose write fails may leave the channel mid-loop.
            for listener in list(listeners):
                listener.deliver(frame)
