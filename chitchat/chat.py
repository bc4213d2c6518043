"""The Chat: the handler registry, pushes, and the one delivery path.

Every accepted message takes one path: session -> ``Chat.publish`` -> store -> broker
-> each node's hub -> the sessions listening there -> their transports. A single
process runs the same path with the in-memory store and broker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import protocol
from ._tasks import spawn
from .broker import Broker
from .brokers.memory import MemoryBroker
from .errors import ConfigurationError
from .hub import Hub
from .origin import OriginPolicy
from .protocol import Code
from .session import Limits, Session, State
from .store import Store
from .stores.memory import MemoryStore
from .transports.base import Connection, RequestInfo, Transport
from .user import Message, User

if TYPE_CHECKING:
    import tornado.web

    from .router import ChatRouter

__all__ = ["Chat", "create_server"]

log = logging.getLogger("chitchat")

F = TypeVar("F", bound=Callable[..., Any])

#: The channel every chat message goes to (rooms will add more).
MAIN = "chat"
_NO_PAYLOAD: Any = object()
HEARTBEAT_SLICES = 16


def _user_channel(user_id: str) -> str:
    return "user:" + user_id


class Chat:
    """A chat: register handlers with decorators, mount ``router()``, push messages.

    Keyword arguments (all optional):

    ``broker``, ``store``
        Where messages travel and are kept; default in-memory (one process).
    ``history``
        How many recent messages a newly connected client receives (default 50).
    ``allowed_origins``
        Extra web origins allowed to connect (see ``OriginPolicy``); ``"*"`` allows all.
        The serving host itself is always allowed.
    ``auth_timeout``
        Seconds a connection may take to be authorized (default 10).
    ``handler_timeout``
        Seconds a handler may take to answer good/bad (default 10).
    ``heartbeat``
        Seconds between server pings (default 10); silent clients are closed after two.
    ``max_frame_size``
        Largest accepted frame, in characters (default 64 KiB).
    ``max_pending``
        Frames one connection may have waiting to be handled (default 100).
    ``max_backlog``
        Bytes written to a WebSocket client but not yet taken by it (default 1 MiB);
        a client that stops reading beyond this is disconnected.
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        store: Store | None = None,
        history: int = 50,
        allowed_origins: str | Iterable[str] | None = None,
        auth_timeout: float = 10.0,
        handler_timeout: float = 10.0,
        heartbeat: float = 10.0,
        max_frame_size: int = 64 * 1024,
        max_pending: int = 100,
        max_backlog: int = 1024 * 1024,
    ) -> None:
        if history < 0:
            raise ConfigurationError("history must be >= 0")
        for name, value in (("auth_timeout", auth_timeout), ("handler_timeout", handler_timeout),
                            ("heartbeat", heartbeat), ("max_frame_size", max_frame_size),
                            ("max_pending", max_pending), ("max_backlog", max_backlog)):
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive")
        self.limits = Limits(
            auth_timeout, handler_timeout, heartbeat, max_frame_size, max_pending, max_backlog
        )
        self.history = history
        self.origins = OriginPolicy(allowed_origins)
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.store: Store = store if store is not None else MemoryStore()
        self.authorize_handler: Callable[..., Any] | None = None
        self.message_handler: Callable[..., Any] | None = None
        self._hub = Hub()
        self._users: dict[str, set[Session]] = {}
        # Sessions in HEARTBEAT_SLICES buckets (by hash): each tick of the heartbeat
        # timer pings one bucket, so pings and pongs are spread over the interval
        # instead of arriving all in one loop turn.
        self._buckets: list[set[Session]] = [set() for _ in range(HEARTBEAT_SLICES)]
        self._tick = 0
        self._node = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._started: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None

    # -- the registry -------------------------------------------------------------------

    def authorize(self, handler: F) -> F:
        """Register ``handler(data, good, bad)`` (sync or async) as the authorizer.

        ``data`` is what the client passed as ``auth``. Call ``good(identifier,
        meta=None)`` to accept the connection as that user, or ``bad(meta=None)`` to
        refuse it (the client gets ``unauthorized`` with ``meta`` and does not retry).
        """
        self.authorize_handler = handler
        return handler

    @overload
    def message(self, user: F) -> F: ...

    @overload
    def message(self, user: str | User, payload: Any) -> asyncio.Task[None]: ...

    def message(self, user: Any, payload: Any = _NO_PAYLOAD) -> Any:
        """Register the message handler, or push ``payload`` to one user.

        As a decorator, registers ``handler(user, data, good, bad)``: ``good(payload=None)``
        accepts (delivering ``payload``, or ``data`` unchanged), ``bad(meta=None)`` rejects.
        Without a handler every message is accepted as sent.

        ``chat.message(user, payload)`` (a ``User`` or its identifier) delivers
        ``payload`` to every open connection of that user, on every node, as a message
        whose ``user`` is null. It is not kept in history. The payload is encoded at
        once (``TypeError`` if it is not JSON); the delivery runs in the background and
        the returned task may be awaited. Must be called on the running event loop.
        """
        if payload is _NO_PAYLOAD:
            if not callable(user):
                raise TypeError("chat.message(user, payload) needs a payload to push")
            self.message_handler = user
            return user
        user_id = user.id if isinstance(user, User) else user
        if not isinstance(user_id, str):
            raise TypeError("push to a User or a user identifier string")
        message = protocol.make_message(self._next_id(), None, payload, _now_ms())
        return spawn(self._push(user_id, message), f"push to {user_id!r}")

    def online(self) -> list[str]:
        """The identifiers of users with at least one open connection to this node."""
        return sorted(self._users)

    # -- mounting -----------------------------------------------------------------------

    def router(self, prefix: str = "/chat", **options: Any) -> ChatRouter:
        """The URL rules that serve this chat under ``prefix`` (see ``ChatRouter``).

        Call it while the Tornado event loop is running (sockjs-tornado starts timers).
        """
        from .router import ChatRouter  # the router sits above the core

        return ChatRouter(self, prefix, **options)

    def install_handlers(
        self, app: tornado.web.Application, prefix: str = "/chat", **options: Any
    ) -> ChatRouter:
        """Add this chat's URL rules to an existing Application; returns the router."""
        router = self.router(prefix, **options)
        app.add_handlers(r".*", router.urls)
        return router

    # -- the transport-facing side ------------------------------------------------------

    def open(self, transport: Transport, request: RequestInfo) -> Connection:
        """A client connected through ``transport``; returns the Connection for its frames.

        Refuses, with error 4004 and a close, a connection whose Origin is not allowed.
        """
        self._ensure_started()
        session = Session(self, transport, request)
        if not self.origins.allows(request.origin, request.host):
            log.warning("refused a connection from origin %r (host %r)", request.origin,
                        request.host)
            session.fail(Code.ORIGIN_REFUSED, "this origin may not connect")
        else:
            self._bucket(session).add(session)
        return session

    # -- the session-facing side (session.Core) -----------------------------------------

    async def join(self, session: Session) -> list[Message]:
        assert session.user is not None
        await self._ensure_started()
        if session.state is State.CLOSED:  # it left while the broker was starting
            return []
        user_id = session.user.id
        sessions = self._users.setdefault(user_id, set())
        sessions.add(session)
        self._hub.add(MAIN, session)
        if self._hub.add(_user_channel(user_id), session):
            await self.broker.subscribe(_user_channel(user_id))
        return await self.store.recent(MAIN, self.history) if self.history else []

    def leave(self, session: Session) -> None:
        self._bucket(session).discard(session)
        if session.user is None:
            return
        user_id = session.user.id
        sessions = self._users.get(user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._users[user_id]
        self._hub.remove(MAIN, session)
        if self._hub.remove(_user_channel(user_id), session):
            spawn(self.broker.unsubscribe(_user_channel(user_id)), "broker unsubscribe")

    async def publish(self, user: User, data: Any) -> Message:
        """Keep and deliver one accepted message; the one path every message takes."""
        message = protocol.make_message(self._next_id(), user.id, data, _now_ms())
        await self.store.append(MAIN, message)
        await self.broker.publish(MAIN, message.raw)
        return message

    # -- life cycle ---------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.Task[None]:
        if self._started is None:
            self._started = spawn(self._start(), "starting the chat")
        return self._started

    async def _start(self) -> None:
        await self.broker.start(self._hub.deliver)
        await self.broker.subscribe(MAIN)
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(self.limits.heartbeat / HEARTBEAT_SLICES, self._beat)

    def _bucket(self, session: Session) -> set[Session]:
        return self._buckets[hash(session) % HEARTBEAT_SLICES]

    def _beat(self) -> None:
        # Every session is visited once per heartbeat interval, one slice per tick.
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._tick = (self._tick + 1) % HEARTBEAT_SLICES
        for session in list(self._buckets[self._tick]):
            session.heartbeat(now)
        self._heartbeat = loop.call_later(self.limits.heartbeat / HEARTBEAT_SLICES, self._beat)

    async def stop(self) -> None:
        """Close every connection and release the broker and store."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        for session in [s for bucket in self._buckets for s in bucket]:
            session.transport.close(1001, "server shutting down")
        if self._started is not None:
            await self._started
            await self.broker.stop()
            await self.store.close()
            self._started = None

    async def _push(self, user_id: str, message: Message) -> None:
        await self._ensure_started()
        await self.broker.publish(_user_channel(user_id), message.raw)

    def _next_id(self) -> str:
        return f"{self._node}-{next(self._ids):x}"


def create_server(**options: Any) -> Chat:
    """Same as ``Chat(**options)``."""
    return Chat(**options)


def _now_ms() -> int:
    return int(time.time() * 1000)
