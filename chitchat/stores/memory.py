"""The in-process history store: bounded, lost on restart."""

from __future__ import annotations

import collections
import itertools

from ..errors import ConfigurationError
from ..store import Store
from ..user import Message

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Keeps the newest ``capacity`` messages of each channel in memory."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ConfigurationError("MemoryStore capacity must be at least 1")
        self._capacity = capacity
        self._channels: dict[str, collections.deque[Message]] = {}

    async def append(self, channel: str, message: Message) -> None:
        history = self._channels.get(channel)
        if history is None:
            history = self._channels[channel] = collections.deque(maxlen=self._capacity)
        history.append(message)

    async def close(self) -> None:
        self._channels.clear()

    async def recent(self, channel: str, limit: int) -> list[Message]:
        history = self._channels.get(channel)
        if not history or limit <= 0:
            return []
        return list(itertools.islice(history, max(0, len(history) - limit), None))
