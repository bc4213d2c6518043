"""The in-process broker: one node, nothing else to run."""

from __future__ import annotations

from ..broker import Broker, Deliver, Resumed

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Delivers each publish synchronously, before ``publish`` returns, in order."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._channels: set[str] = set()

    async def start(self, deliver: Deliver, resumed: Resumed | None = None) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None
        self._channels.clear()

    async def publish(self, channel: str, payload: str) -> None:
        if self._deliver is not None and channel in self._channels:
            self._deliver(channel, payload)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
