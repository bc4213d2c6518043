"""Post into a chat from a process that serves no connections: a worker, a cron job.

    publisher = chitchat.Publisher("redis://127.0.0.1:6379/0")
    message = await publisher.publish("main", {"text": "build 1234 passed"})
    await publisher.message("ann", {"text": "your export is ready"})
    await publisher.close()

A published message takes the path of ``Chat.publish`` (``RoomLog.post``: the room's
next seq in the store, then the room's channel), so it is kept, ordered and delivered
like any other; a push takes the path of ``chat.message(user, payload)``. Errors are
raised, never swallowed: ``ValueError``/``TypeError`` for a bad room or payload,
``BackendError`` when Redis fails (the message was not stored: the script that stores
it also publishes it, so a stored message is also on its way).
"""

from __future__ import annotations

from typing import Any

from . import channels, log, protocol
from .brokers.redis import RedisBroker
from .handlers import Registry
from .node import Node
from .receipts import Receipts
from .roomlog import RoomLog, now_ms
from .settings import Settings
from .stores.redis import RedisStore
from .typing_indicator import Typing
from .user import Message, User

__all__ = ["Publisher"]


class Publisher:
    """Publishes into the chat whose Redis is at ``redis_url`` (``prefix``: the Chat's,
    ``chitchat`` unless it set one). ``capacity`` and ``dedup_window`` as the Chat's
    ``retention`` count and ``dedup_window``, if it changed them."""

    def __init__(self, redis_url: str, *, prefix: str = "chitchat",
                 capacity: int | None = 10_000, dedup_window: float = 24 * 3600.0) -> None:
        self._store = RedisStore(redis_url, prefix=prefix, capacity=capacity,
                                 dedup_window=dedup_window, publish=True)
        self._broker = RedisBroker(redis_url, prefix=prefix, store_publishes=True)
        self._node = Node(self._broker, self._store)
        settings = Settings.build()
        # No local connections, so typing and receipts have nothing to tell anyone;
        # they are here because RoomLog.post is the one path of every message.
        typing = Typing(self._node.publish, _nobody, settings.typing_ttl,
                        settings.typing_interval)
        receipts = Receipts(self._store, self._node.publish, _nobody)
        self._log = RoomLog(self._node, typing, receipts, settings, Registry())
        self._started = False

    async def publish(self, room: str, payload: Any, user: str | User | None = None) -> Message:
        """Store ``payload`` as the newest message of ``room`` (as if ``user`` sent it,
        or nobody) and deliver it to the room's connections on every process."""
        why = protocol.room_error(room)
        if why is not None:
            raise ValueError(why)
        data_json = protocol.dumps(payload)
        author = user.id if isinstance(user, User) else user
        if author is not None and not isinstance(author, str):
            raise TypeError("name a user by its User or its identifier string")
        await self._start()
        return await self._log.post(room, author, payload, data_json)

    async def message(self, user: str | User, payload: Any) -> None:
        """Push ``payload`` to every open connection of ``user`` on every process (not
        kept; a user with no connection gets nothing)."""
        user_id = user.id if isinstance(user, User) else user
        if not isinstance(user_id, str):
            raise TypeError("name a user by its User or its identifier string")
        raw = log.push_raw(self._node.next_id(), protocol.dumps(payload), now_ms())
        await self._broker.publish(channels.user_channel(user_id), channels.push(raw))

    async def close(self) -> None:
        await self._broker.stop()
        await self._store.close()

    async def _start(self) -> None:
        if not self._started:
            await self._store.start()  # refuses a Redis that may evict keys
            self._started = True


def _nobody(room: str, frame: str) -> None:
    """The local fan-out of a process without connections."""
