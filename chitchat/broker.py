"""The broker contract: how a published payload reaches every node's local fan-out."""

from __future__ import annotations

import abc
from collections.abc import Callable

__all__ = ["Broker", "Deliver", "Resumed"]

#: Called by a broker, on the node's event loop, for every payload published to a
#: channel this node subscribes to: ``deliver(channel, payload)``.
Deliver = Callable[[str, str], None]

#: Called by a broker, on the node's event loop, after it lost its connection and got it
#: back: payloads published meanwhile may never be delivered, so the node re-reads what
#: it needs from the store (see ``chitchat.feed``).
Resumed = Callable[[], None]


class Broker(abc.ABC):
    """Carries payloads (strings, see ``chitchat.channels``) between the nodes of a chat.

    A Chat calls ``start`` once before anything else and ``stop`` once at the end.
    ``publish`` returns once the broker has taken the payload; every node subscribed to
    the channel then gets ``deliver(channel, payload)`` at most once, and payloads that
    one node published to one channel are delivered in the order published. A broker
    may lose payloads while it is disconnected (then it calls ``resumed``); a node never
    relies on the broker alone for a room's log: it fills gaps from the store. The
    in-memory broker is just another broker: a single process uses the same path as a
    cluster. Errors from the underlying system are raised as ``BackendError``.
    """

    @abc.abstractmethod
    async def start(self, deliver: Deliver, resumed: Resumed | None = None) -> None:
        """Connect, and from now on hand every delivery to ``deliver``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect; no ``deliver`` call happens after this returns."""

    @abc.abstractmethod
    async def publish(self, channel: str, payload: str) -> None:
        """Send ``payload`` to every node subscribed to ``channel``."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start delivering ``channel`` to this node. Idempotent."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` to this node. Idempotent."""
