"""The history store contract: where accepted chat messages are kept."""

from __future__ import annotations

import abc

from .user import Message

__all__ = ["Store"]


class Store(abc.ABC):
    """Keeps accepted chat messages per channel, oldest first.

    Only accepted chat messages are appended: never a rejected message, never a push.
    ``append`` returns once the message is kept; ``recent`` returns the last ``limit``
    messages of a channel, oldest first. Errors from the underlying system are raised
    as ``BackendError``.
    """

    @abc.abstractmethod
    async def append(self, channel: str, message: Message) -> None:
        """Keep ``message`` as the newest of ``channel``."""

    @abc.abstractmethod
    async def recent(self, channel: str, limit: int) -> list[Message]:
        """The newest ``limit`` messages of ``channel``, oldest first."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources; called once, when the Chat stops."""
