"""The Chat: the handler registry, the public API, and the wiring of the parts.

A message goes down and back up once: transport -> ``Session`` -> the application's
handler -> ``RoomLog`` -> ``Store`` -> ``Broker`` -> each node's ``Feed`` -> the room's
sessions -> their transports. A single process runs the same path with the in-memory
store, broker and presence. The parts (each in a module named for its concern):
``Node`` (broker subscriptions, routing), ``Rooms`` (membership, history, recovery),
``RoomLog`` (writes and reads of rooms' logs), ``Presence``, ``Typing``, ``Receipts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import channels, log, protocol
from ._tasks import spawn
from .broker import Broker
from .brokers.memory import MemoryBroker
from .handlers import Registry, takes_room
from .limits import Caps, Deadlines, TokenBucket, client_ip
from .node import Node
from .origin import OriginPolicy
from .presence import MemoryPresence, Presence, PresenceBackend
from .protocol import Code
from .receipts import Receipts
from .roomlog import RoomLog, now_ms
from .rooms import Rooms
from .session import Session
from .settings import Settings
from .store import Store
from .stores.memory import MemoryStore
from .transports.base import Connection, RequestInfo, Transport
from .typing_indicator import Typing
from .user import Message, User

if TYPE_CHECKING:
    import tornado.web

    from .feed import Feed
    from .router import ChatRouter

__all__ = ["Chat", "create_server"]

logger = logging.getLogger("chitchat")

F = TypeVar("F", bound=Callable[..., Any])

_NO_PAYLOAD: Any = object()
HEARTBEAT_SLICES = 16
#: Seconds between two runs of the retention sweep.
RETENTION_EVERY = 60.0


class Chat:
    """A chat: register handlers with decorators, mount ``router()``, push and publish.

    Every option is keyword-only and optional; README.md's table describes each one:
    ``broker``, ``store``, ``presence_backend`` (where the chat's state is kept: in
    memory by default), ``redis`` (a Redis URL: ``RedisBroker``, ``RedisStore`` and
    ``RedisPresence`` there for those not given, so that many processes serve one
    chat; needs ``pip install chitchat[redis]``), ``allowed_origins``, ``default_room``,
    ``history``, ``retention``, ``recovery_limit``, ``dedup_window``, ``presence``,
    ``presence_grace``, ``presence_interval``, ``presence_limit``, ``typing_ttl``,
    ``typing_interval``, ``auth_timeout``, ``handler_timeout``,
    ``heartbeat``, ``max_frame_size``, ``max_depth``, ``max_pending``, ``max_backlog``,
    ``send_rate``, ``frame_rate``, ``max_user_connections``, ``max_ip_connections``,
    ``max_connections``, ``trusted_proxies``. Bad values raise ``ConfigurationError``.
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        store: Store | None = None,
        presence_backend: PresenceBackend | None = None,
        redis: str | None = None,
        allowed_origins: str | Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        self.limits = Settings.build(**options)
        if redis is not None:  # the Redis engine for the parts not given
            from ._redis import engine

            broker, store, presence_backend = engine(redis, self.limits, broker, store,
                                                     presence_backend)
        self.origins = OriginPolicy(allowed_origins)
        self.registry = Registry()
        self.stopping = False
        self.store: Store = store if store is not None else MemoryStore()
        self.overlap_sends = self.store.remote
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self._node = Node(self.broker, self.store)
        self._node.on_reset = self._log_reset
        s = self.limits
        self._presence = Presence(presence_backend or MemoryPresence(), s.presence_grace,
                                  s.presence_interval, s.presence_limit,
                                  self._broadcast_presence)
        self._typing = Typing(self._node.publish, self._broadcast, s.typing_ttl,
                              s.typing_interval)
        self._receipts = Receipts(self.store, self._node.publish, self._broadcast)
        self._node.watchers += [self._presence, self._typing, self._receipts]
        self._node.on("presence", lambda _, change: self._presence.changed(change))
        self._node.on("typing", lambda _, change: self._typing.changed(change))
        self._node.on("read", lambda _, change: self._receipts.changed(change))
        self._rooms = Rooms(self._node, self._presence, s, self.registry, self._sessions_of)
        self._log = RoomLog(self._node, self._typing, self._receipts, s, self.registry)
        self._handlers: dict[type, Callable[[Session, Any], Awaitable[None]]] = {
            protocol.Send: self._log.send,
            protocol.Join: self._rooms.join,
            protocol.Leave: self._rooms.leave,
            protocol.Typing: self._log.typing,
            protocol.History: self._log.history,
            protocol.Read: self._log.read,
            protocol.Edit: self._log.edit,
            protocol.Remove: self._log.remove,
            protocol.React: self._log.react,
        }
        self._caps = Caps(s.max_connections, s.max_ip_connections)
        self._auth_deadlines: Deadlines[Session] = Deadlines(s.auth_timeout, Session.auth_expired)
        self._users: dict[str, set[Session]] = {}
        self._send_buckets: dict[str, TokenBucket] = {}
        # Sessions in HEARTBEAT_SLICES buckets (by hash): each tick of the heartbeat
        # timer pings one bucket, so pings and pongs are spread over the interval
        # instead of arriving all in one loop turn.
        self._buckets: list[set[Session]] = [set() for _ in range(HEARTBEAT_SLICES)]
        self._tick = 0
        self._started: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._all_closed: asyncio.Event | None = None

    # -- the registry -------------------------------------------------------------------

    def authorize(self, handler: F) -> F:
        """Register ``handler(data, good, bad)`` (sync or async) as the authorizer.

        ``data`` is what the client passed as ``auth``. Call ``good(identifier,
        meta=None)`` to accept the connection as that user, or ``bad(meta=None)`` to
        refuse it (the client gets ``unauthorized`` with ``meta`` and does not retry).
        Without an authorize handler every connection is refused.
        """
        self.registry.authorize = handler
        return handler

    @overload
    def message(self, user: F) -> F: ...

    @overload
    def message(self, user: str | User, payload: Any) -> asyncio.Task[None]: ...

    def message(self, user: Any, payload: Any = _NO_PAYLOAD) -> Any:
        """Register the message handler, or push ``payload`` to one user.

        As a decorator, registers ``handler(user, data, good, bad)``, or
        ``handler(user, data, good, bad, room)`` if it declares a ``room`` parameter
        (then it is called with the room as that keyword argument).
        ``good(payload=None)`` accepts (delivering ``payload``, or ``data`` unchanged),
        ``bad(meta=None)`` rejects. Without a handler every message is accepted as sent.

        ``chat.message(user, payload)`` (a ``User`` or its identifier) delivers
        ``payload`` to every open connection of that user, on every node, as a message
        whose ``room``, ``seq`` and ``user`` are null. It is not kept. The payload is
        encoded at once (``TypeError``/``ValueError`` if it cannot be delivered); the
        delivery runs in the background and the returned task may be awaited. Must be
        called on the running event loop.
        """
        if payload is _NO_PAYLOAD:
            if not callable(user):
                raise TypeError("chat.message(user, payload) needs a payload to push")
            self.registry.message = user
            self.registry.message_takes_room = takes_room(user)
            return user
        user_id = _user_id(user)
        raw = log.push_raw(self._node.next_id(), protocol.dumps(payload), now_ms())
        return spawn(self._publish_to(channels.user_channel(user_id), channels.push(raw)),
                     f"push to {user_id!r}")

    def join(self, handler: F) -> F:
        """Register ``handler(user, room, data, good, bad)`` (sync or async): called for
        every ``join`` a client asks for (``data`` is what it passed). ``good(meta=None)``
        admits (the client's promise resolves with ``meta``), ``bad(meta=None)`` refuses.
        Without a join handler every room is open to every authorized user. The default
        room is joined without it (set ``default_room=None`` to control every room)."""
        self.registry.join = handler
        return handler

    def edit(self, handler: F) -> F:
        """Register ``handler(user, message, data, good, bad)``: decides on an edit of
        ``message`` (the original ``Message``) to ``data``; ``good(payload=None)`` stores
        ``payload`` (or ``data``). Without it only a message's author may edit it."""
        self.registry.edit = handler
        return handler

    @overload
    def remove(self, user: F) -> F: ...

    @overload
    def remove(self, user: str | User, room: str) -> asyncio.Task[None]: ...

    def remove(self, user: Any, room: Any = None) -> Any:
        """Register the removal handler, or take a user out of a room.

        As a decorator, registers ``handler(user, message, good, bad)``: decides on
        deleting ``message``; without it only a message's author may delete it.

        ``chat.remove(user, room)`` takes every connection of ``user`` (on every node)
        out of ``room`` at once (no grace period): each gets a ``removed`` event and does
        not re-join the room by itself. Returns a task that may be awaited.
        """
        if room is None:
            if not callable(user):
                raise TypeError("chat.remove(user, room) needs a room")
            self.registry.remove = user
            return user
        return self._move("remove", user, room)

    def add(self, user: str | User, room: str) -> asyncio.Task[None]:
        """Put every open connection of ``user`` (on every node) in ``room``, without the
        join handler: each gets the room's info (``joined``), history and presence, and
        re-joins it after a reconnect. Returns a task that may be awaited."""
        return self._move("add", user, room)

    def _move(self, op: str, user: Any, room: str) -> asyncio.Task[None]:
        why = protocol.room_error(room)
        if why is not None:
            raise ValueError(why)
        user_id = _user_id(user)
        return spawn(self._publish_to(channels.user_channel(user_id),
                                      channels.control(op, room=room)),
                     f"chat.{op}({user_id!r}, {room!r})")

    # -- the public API -----------------------------------------------------------------

    async def publish(self, room: str, payload: Any, user: str | User | None = None) -> Message:
        """Store and deliver ``payload`` as a message in ``room`` (from a bot, a job),
        as if ``user`` (or nobody: ``user`` null) had sent it; returns the Message.
        Raises ``ValueError`` for a bad room name or a payload that cannot be
        delivered, ``BackendError`` if the store is unreachable."""
        why = protocol.room_error(room)
        if why is not None:
            raise ValueError(why)
        data_json = protocol.dumps(payload)
        await self._ensure_started()
        author = None if user is None else _user_id(user)
        return await self._log.post(room, author, payload, data_json)

    async def history(self, room: str, before: int | None = None,
                      limit: int = 50) -> list[Message]:
        """Up to ``limit`` messages of ``room`` with ``seq < before`` (or the newest),
        oldest first, as they are now (edited, with reactions; removed ones left out)."""
        await self._ensure_started()
        _, messages = await self.store.recent(room, limit, before)
        return messages

    async def unread(self, user: str | User) -> dict[str, int]:
        """``{room: count}`` of messages from others after ``user``'s read position,
        for every room the user is in or has read (computed by the store)."""
        await self._ensure_started()
        user_id = _user_id(user)
        return await self.store.unread(user_id, self.rooms(user_id))

    async def read_position(self, user: str | User, room: str) -> int:
        """``user``'s read position in ``room`` (0: never read)."""
        await self._ensure_started()
        return (await self.store.read_state(_user_id(user), room, 0)).last_read

    def online(self) -> list[str]:
        """The identifiers of users with at least one open connection to this node."""
        return sorted(self._users)

    def members(self, room: str) -> list[str]:
        """The user ids in ``room`` (a user whose last connection left is still in it
        for ``presence_grace`` seconds). With a shared presence backend, complete for
        the rooms this process has connections in."""
        known = self._presence.members(room) if self.limits.presence else None
        if known is not None:
            return known
        feed = self._node.feeds.get(room)
        if feed is None:
            return []
        listeners: list[Any] = [*feed.open, *feed.holding]
        return sorted({s.user.id for s in listeners if s.user is not None})

    def rooms(self, user: str | User) -> list[str]:
        """The rooms ``user`` is in."""
        user_id = _user_id(user)
        known = self._presence.backend.rooms_now(user_id) if self.limits.presence else None
        if known is not None:
            return known
        return sorted({room for s in self._users.get(user_id, ()) for room in s.rooms})

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

        Refuses, with an error frame and a close: a connection whose Origin is not
        allowed (4004), one past a connection cap (4013), any while stopping (4014).
        """
        self._ensure_started()
        session = Session(self, transport, request, client_ip(request,
                                                              self.limits.trusted_proxies))
        if self.stopping:
            session.fail(Code.RESTARTING, "the server is restarting", retry=1.0)
        elif not self.origins.allows(request.origin, request.host):
            logger.warning("refused a connection from origin %r (host %r)", request.origin,
                           request.host)
            session.fail(Code.ORIGIN_REFUSED, "this origin may not connect")
        elif (why := self._caps.admit(session.ip)) is not None:
            logger.warning("refused a connection from %s: %s", session.ip, why)
            session.fail(Code.TOO_MANY_CONNECTIONS, why)
        else:
            self._bucket(session).add(session)
            self._auth_deadlines.add(session)
        return session

    # -- the session-facing side (session.Core) -----------------------------------------

    async def authorized(self, session: Session, frame: protocol.Auth) -> bool:
        user = session.user
        assert user is not None
        self._auth_deadlines.discard(session)
        cap = self.limits.max_user_connections
        sessions = self._users.setdefault(user.id, set())
        if cap is not None and len(sessions) >= cap:
            session.fail(Code.TOO_MANY_CONNECTIONS,
                         f"this user has {cap} connections open already")
            if not sessions:
                del self._users[user.id]
            return False
        sessions.add(session)
        if self.limits.send_rate is not None and user.id not in self._send_buckets:
            self._send_buckets[user.id] = TokenBucket(*self.limits.send_rate,
                                                      asyncio.get_running_loop().time())
        await self._ensure_started()
        await self._node.listen_user(user.id, session)
        entered = None
        room = self.limits.default_room
        if room is not None and frame.default and not session.gone:
            entered = await self._rooms.enter(session, room, frame.since)
            if entered is None:
                return False
        if session.gone:
            return False
        heartbeat_ms = int(self.limits.heartbeat * 1000)
        info = protocol.dumps(entered.info) if entered is not None else None
        session.send(protocol.welcome(user.id, user.meta, heartbeat_ms, info,
                                      self.limits.send_rate))
        if entered is not None:
            for text in entered.frames:
                session.send(text)
            self._rooms.release(session, entered)
        return True

    async def handle(self, session: Session, frame: protocol.ClientFrame) -> None:
        await self._handlers[type(frame)](session, frame)
        self._log.outage.ok()

    async def begin_send(self, session: Session,
                         frame: protocol.Send) -> Coroutine[Any, Any, None] | None:
        finish = await self._log.begin_send(session, frame)
        if finish is None:
            self._log.outage.ok()
            return None
        return self._finished(finish)

    async def _finished(self, finish: Coroutine[Any, Any, None]) -> None:
        await finish
        self._log.outage.ok()

    def send_bucket(self, user: User) -> TokenBucket | None:
        return self._send_buckets.get(user.id)

    def backend_failed(self, exc: BaseException) -> None:
        self._log.outage.failed(exc, "a request")

    def closed(self, session: Session) -> None:
        self._auth_deadlines.discard(session)
        bucket = self._bucket(session)
        if session in bucket:
            bucket.discard(session)
            self._caps.release(session.ip)
        user = session.user
        if user is not None:
            self._rooms.exit_all(session)
            sessions = self._users.get(user.id)
            if sessions is not None and session in sessions:
                sessions.discard(session)
                self._node.unlisten_user(user.id, session)
                if not sessions:
                    del self._users[user.id]
                    self._send_buckets.pop(user.id, None)
        if self._all_closed is not None and not any(self._buckets):
            self._all_closed.set()

    def _sessions_of(self, user_id: str) -> Iterable[Session]:
        return self._users.get(user_id, ())

    def _broadcast(self, room: str, frame: str) -> None:
        feed = self._node.feeds.get(room)
        if feed is not None:
            feed.broadcast(frame)

    def _broadcast_presence(self, room: str, frame_for: Callable[[int], str | None],
                            version: int) -> None:
        feed = self._node.feeds.get(room)
        if feed is not None:
            feed.broadcast_since(frame_for, version)

    def _log_reset(self, room: str, feed: Feed) -> None:
        for listener in [*feed.open, *feed.holding]:
            listener.fail(Code.RESTARTING, "the room's history was reset: reconnect",  # type: ignore[attr-defined]
                          retry=2.0)

    # -- life cycle ---------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.Task[None]:
        if self._started is None:
            self._started = spawn(self._start(), "starting the chat")
        return self._started

    async def _start(self) -> None:
        await self.store.start()
        await self._node.start()
        await self._presence.backend.start(self._node.publish, self._node.id)
        loop = asyncio.get_running_loop()
        self._timers = [loop.call_later(self.limits.heartbeat / HEARTBEAT_SLICES, self._beat),
                        loop.call_later(RETENTION_EVERY, self._retain)]

    def _bucket(self, session: Session) -> set[Session]:
        return self._buckets[hash(session) % HEARTBEAT_SLICES]

    def _beat(self) -> None:
        # Every session is visited once per heartbeat interval, one slice per tick.
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._tick = (self._tick + 1) % HEARTBEAT_SLICES
        for session in list(self._buckets[self._tick]):
            session.heartbeat(now)
        self._timers[0] = loop.call_later(self.limits.heartbeat / HEARTBEAT_SLICES, self._beat)

    def _retain(self) -> None:
        s = self.limits
        spawn(self.store.trim(s.retention, s.dedup_window, time.time()), "retention sweep")
        self._timers[1] = asyncio.get_running_loop().call_later(RETENTION_EVERY, self._retain)

    async def stop(self, timeout: float = 10.0, retry: float = 5.0) -> None:
        """Shut down gracefully, within about ``timeout`` seconds.

        New connections are refused; frames not yet being handled are dropped; handler
        calls under way get up to half of ``timeout`` to answer; then every client is
        told to reconnect (error 4014: the browser client waits a random delay of up to
        ``retry`` seconds, so a restarted server is not met by every client at once)
        and its connection closed; then the broker, presence backend and store are
        closed (pending writes finished).
        """
        if self.stopping:
            return
        self.stopping = True
        deadline = asyncio.get_running_loop().time() + timeout
        for timer in self._timers:
            timer.cancel()
        self._auth_deadlines.cancel()
        sessions = [s for bucket in self._buckets for s in bucket]
        for session in sessions:
            session.stop_reading()
        busy = [task for s in sessions for task in s.busy()]
        if busy:
            await asyncio.wait(busy, timeout=timeout / 2)
        self._all_closed = asyncio.Event()
        for session in sessions:
            session.fail(Code.RESTARTING, "the server is restarting", retry=retry)
        if any(self._buckets):
            left = max(0.1, deadline - asyncio.get_running_loop().time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), min(left, 6.0))
        self._presence.stop()
        self._typing.stop()
        self._receipts.stop()
        if self._started is not None:
            await self._started
            await self._node.stop()
            await self._presence.backend.close()
            await self.store.close()

    async def _publish_to(self, channel: str, payload: str) -> None:
        await self._ensure_started()
        await self._node.publish(channel, payload)


def create_server(**options: Any) -> Chat:
    """Same as ``Chat(**options)``."""
    return Chat(**options)


def _user_id(user: Any) -> str:
    user_id = user.id if isinstance(user, User) else user
    if not isinstance(user_id, str):
        raise TypeError("name a user by its User or its identifier string")
    return user_id

