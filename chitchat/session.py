"""One connection's life: authorization, in-order handling, heartbeat and limits.

A Session sits between one transport and the chat core. Frames are decoded here,
checked against the limits, and handled strictly one after another: the answer to a
frame comes before anything is done with the next frame, also when the application's
handlers are coroutines that take varying time. Pings and pongs are answered at once.

One exception, for throughput on a store that answers over a pipe or the network
(``Store.remote``: SQLite, Redis): consecutive ``send`` frames overlap once their
appends have begun. Each send is checked and its message handler answers in turn, then
its append is begun and the next send is taken up while it is under way (at most
``SENDS_AHEAD`` at once), so that a connection's burst shares the store's commits and
round trips. What the client sees keeps the frame order: the store keeps the order of
the appends, a finisher task sends the acks in frame order, an answer given at once
(a refusal) is held until the sends before it are answered, and any other frame is
handled only after every send before it has been answered.

Abuse handling (docs/SECURITY.md): every frame takes a token from the connection's
bucket (``frame_rate``), every write to a room's log one from its user's
(``send_rate``); a refused frame gets one coded ``error`` and the connection goes on.
A connection that keeps being refused is closed with ``FLOOD_CLOSED``. Bad frames are
counted and logged at most once a minute per connection, with the count; their content
(which may hold a token) is never logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from . import protocol
from ._tasks import spawn
from .errors import BackendError, ProtocolError
from .handlers import INTERNAL, AuthAnswer, Registry, run_handler
from .limits import TokenBucket
from .protocol import Code
from .settings import Settings
from .transports.base import RequestInfo, Transport
from .user import User

__all__ = ["Core", "Session", "State"]

log = logging.getLogger("chitchat.session")

#: A connection may be refused this many frames in a burst (and 2 a second sustained)
#: before it is closed with FLOOD_CLOSED.
STRIKES = (2.0, 50)
#: Bad frames of one connection are logged at most once per this many seconds.
LOG_EVERY = 60.0


class Core(Protocol):
    """What a session needs from the chat that owns it (``Chat`` implements it)."""

    limits: Settings
    registry: Registry
    stopping: bool
    #: Consecutive sends overlap (the store is ``remote``); else one at a time.
    overlap_sends: bool

    async def authorized(self, session: Session, frame: protocol.Auth) -> bool:
        """Register an authorized session and send its welcome (False: refused)."""

    async def handle(self, session: Session, frame: protocol.ClientFrame) -> None:
        """Handle one frame of an open session and send the answer."""

    async def begin_send(self, session: Session,
                         frame: protocol.Send) -> Coroutine[Any, Any, None] | None:
        """Handle a send up to its append, begun; return the coroutine that answers
        it (None: answered already). See ``RoomLog.begin_send``."""

    def send_bucket(self, user: User) -> TokenBucket | None:
        """The user's send-rate bucket (shared by their connections), or None."""

    def closed(self, session: Session) -> None:
        """Forget a closed session. Called once."""

    def backend_failed(self, exc: BaseException) -> None:
        """A request failed because the store or broker did (log it once per outage)."""


class State(enum.IntEnum):
    CONNECTING = 0  # waiting for the auth frame
    AUTHORIZING = 1  # the authorize handler is running
    SYNCING = 2  # authorized; the default room is being read
    OPEN = 3
    CLOSING = 4  # a fatal frame was sent; the transport closes after it
    CLOSED = 5


#: Consecutive sends of one connection whose appends may be under way at once.
SENDS_AHEAD = 16

#: What answers a send once its append is done (``Core.begin_send``).
Finish = Coroutine[Any, Any, None]

#: In the task beginning a send while earlier ones are unanswered: the session, and the
#: answers it holds back meanwhile (``Session._begin``).
_held_answers: contextvars.ContextVar[tuple[Session, list[str]] | None] = (
    contextvars.ContextVar("held_answers", default=None))

#: Frames that write to a room's log: they count against the user's send rate.
WRITES = (protocol.Send, protocol.Edit, protocol.Remove, protocol.React)


class Session:
    """The core's side of one connection (a ``transports.base.Connection``)."""

    # Thousands of these live at once: no per-instance dict, and no inbox until needed.
    __slots__ = (
        "_bad", "_begun", "_finisher", "_held", "_inbox", "core", "guard", "ip",
        "last_heard", "request", "rooms", "state", "task", "transport", "user",
    )

    def __init__(self, core: Core, transport: Transport, request: RequestInfo,
                 ip: str | None) -> None:
        self.core = core
        self.transport = transport
        self.request = request
        self.ip = ip
        self.user: User | None = None
        self.state = State.CONNECTING
        self.rooms: dict[str, bool] = {}
        self.last_heard = asyncio.get_running_loop().time()
        self.guard = _Guard(core.limits.frame_rate, self.last_heard)
        self._inbox: collections.deque[protocol.ClientFrame] | None = None
        #: The task handling this connection's frames, while there are any.
        self.task: asyncio.Task[None] | None = None
        self._held: list[str] | None = None  # pushes held back while SYNCING
        self._bad: _BadFrames | None = None
        #: Sends whose appends are under way, in frame order, with what finishes each.
        self._begun: collections.deque[tuple[protocol.Send, Finish]] | None = None
        #: The task finishing them (in order), while there are any.
        self._finisher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        who = self.user.id if self.user else "-"
        return f"<Session {who} {self.transport.name} {self.ip}>"

    @property
    def gone(self) -> bool:
        return self.state >= State.CLOSING


    # -- called by the transport --------------------------------------------------------

    def frame_received(self, text: str) -> None:
        if self.state >= State.CLOSING or self.core.stopping:
            return
        now = self.last_heard = asyncio.get_running_loop().time()
        if self.guard.frames is not None and (wait := self.guard.frames.take(now)):
            self._flooded(protocol.leading_ref(text), wait,
                          "this connection is sending too many frames")
            return
        limits = self.core.limits
        try:
            frame = protocol.decode(text, limits.max_frame_size, limits.max_depth)
        except ProtocolError as exc:
            self._refuse(exc.code, exc.reason, exc.ref)
            return
        if isinstance(frame, protocol.Ping):
            self.transport.send(protocol.PONG)
        elif isinstance(frame, protocol.Pong):
            pass
        elif isinstance(frame, protocol.Auth):
            if self.state is not State.CONNECTING:
                self._refuse(Code.ALREADY_AUTHORIZED, "this connection has already sent auth")
                return
            self.state = State.AUTHORIZING
            self._enqueue(frame)
        elif self.state is State.CONNECTING:
            self._refuse(Code.NOT_AUTHORIZED, "send auth first", getattr(frame, "ref", None))
        elif self._inbox and len(self._inbox) >= limits.max_pending:
            self._flooded(getattr(frame, "ref", None), None,
                          "too many frames waiting to be handled")
        elif isinstance(frame, WRITES) and self.user is not None and (
                (bucket := self.core.send_bucket(self.user)) is not None
                and (wait := bucket.take(now))):
            self._flooded(frame.ref, wait, "sending too fast: wait a moment")
        else:
            self._enqueue(frame)

    def closed(self) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self._inbox = None
        self._held = None
        if self._bad is not None:
            self._bad.summary(self)
        self.core.closed(self)

    # -- called by the core -------------------------------------------------------------

    def send(self, frame: str) -> None:
        """Write one frame now (the session's own answers and room syncs)."""
        if (held := _held_answers.get()) is not None and held[0] is self:
            held[1].append(frame)  # sent after the answers of the sends before it
        elif self.state < State.CLOSING:
            self.transport.send(frame)

    def deliver(self, frame: str) -> None:
        """Write a frame from a room's feed or the user's hub (pushes are held back
        while the default room is being synced, so that its history comes first)."""
        if self.state < State.CLOSING:
            if self._held is not None:
                self._held.append(frame)
            else:
                self.transport.send(frame)

    def opened(self) -> None:
        """Authorized and synced: from now on deliveries go straight out."""
        held, self._held = self._held or [], None
        self.state = State.OPEN
        for frame in held:
            self.transport.send(frame)

    def heartbeat(self, now: float) -> None:
        """Ping the client, or close if nothing was heard for two intervals."""
        if self.state not in (State.SYNCING, State.OPEN):
            return
        if now - self.last_heard > 2 * self.core.limits.heartbeat:
            self.fail(Code.HEARTBEAT_TIMEOUT, "nothing heard from the client")
        else:
            self.transport.send(protocol.PING)

    def auth_expired(self) -> None:
        if self.state in (State.CONNECTING, State.AUTHORIZING):
            self.fail(Code.AUTH_TIMEOUT, "not authorized in time")

    def fail(self, code: Code, reason: str, retry: float | None = None) -> None:
        """Send a fatal error frame, then close once it has been flushed."""
        if self.state >= State.CLOSING:
            return
        log.info("%r closed: %s (%d)", self, reason, code)
        self.transport.send(protocol.error(code, reason, retry=retry))
        self._close(code, reason)

    def stop_reading(self) -> None:
        """Shutting down: frames not yet being handled are dropped (a client re-sends
        what was not answered after it reconnects); new ones are ignored."""
        if self._inbox:
            self._inbox.clear()

    # -- the in-order handling of frames ------------------------------------------------

    def _enqueue(self, frame: protocol.ClientFrame) -> None:
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append(frame)
        if self.task is None:
            self.task = spawn(self._drain(), f"handling frames of {self!r}")

    async def _drain(self) -> None:
        try:
            while self._inbox and self.state < State.CLOSING:
                frame = self._inbox.popleft()
                if isinstance(frame, protocol.Send) and self.core.overlap_sends and (
                        self._begun or (self._inbox and isinstance(self._inbox[0],
                                                                   protocol.Send))):
                    # Sends are under way, or another follows this one: overlap. (A
                    # lone send is handled at once, without the tasks that costs.)
                    if self._begun is not None and len(self._begun) >= SENDS_AHEAD:
                        await self.finished()
                    await self._begin(frame)
                    continue
                if self._finisher is not None:  # any other frame waits for the sends before it
                    await self.finished()
                if isinstance(frame, protocol.Auth):
                    await self._authorize(frame)
                else:
                    await self._handle(frame, self.core.handle(self, frame))
        finally:
            self.task = None

    async def finished(self) -> None:
        """Until every send begun has been answered."""
        if self._finisher is not None:
            await asyncio.shield(self._finisher)

    def busy(self) -> list[asyncio.Task[None]]:
        """The tasks handling this connection's frames now."""
        return [task for task in (self.task, self._finisher) if task is not None]

    async def _begin(self, frame: protocol.Send) -> None:
        """Take a send up to its append, begun, and leave its finish to the finisher.
        While earlier sends are unanswered, what this one answers at once (a refusal,
        the ack of a ``cid`` sent before) is held and sent in its turn."""
        begun = self._begun
        if begun is None:
            begun = self._begun = collections.deque()
        answers: list[str] = []
        finish: Finish | None = None

        async def begin() -> None:
            nonlocal finish
            finish = await self.core.begin_send(self, frame)

        # Only this task's sends are held (the finisher answers in a task of its own).
        holding = _held_answers.set((self, answers)) if begun else None
        try:
            await self._handle(frame, begin())
        finally:
            if holding is not None:
                _held_answers.reset(holding)
        if answers:
            begun.append((frame, self._answered(answers)))
        if finish is not None:
            begun.append((frame, finish))
        if begun and self._finisher is None:
            self._finisher = spawn(self._finish(begun), f"answering sends of {self!r}")

    async def _answered(self, answers: list[str]) -> None:
        for answer in answers:
            self.send(answer)

    async def _finish(self, begun: collections.deque[tuple[protocol.Send, Finish]]) -> None:
        try:
            while begun:
                await self._handle(*begun[0])
                begun.popleft()  # only now: the one being finished counts as begun
        finally:
            self._finisher = None

    async def _handle(self, frame: protocol.ClientFrame,
                      handling: Coroutine[Any, Any, None]) -> None:
        ref = getattr(frame, "ref", None)
        try:
            await handling
        except BackendError as exc:  # logged once per outage, not per request
            self.core.backend_failed(exc)
            if ref is not None:
                self.send(protocol.nack(ref, {"error": "unavailable"}))
        except Exception:
            log.exception("could not handle a %s frame of %r", type(frame).__name__.lower(),
                          self)
            if ref is not None:
                self.send(protocol.nack(ref, INTERNAL))

    async def _authorize(self, frame: protocol.Auth) -> None:
        if frame.version != protocol.VERSION:
            self.fail(Code.UNSUPPORTED_VERSION, f"this server speaks version {protocol.VERSION}")
            return
        handler = self.core.registry.authorize
        if handler is None:
            log.warning("no @chat.authorize handler is registered: refusing %r", self)
            ok, value = False, {"error": "no authorize handler"}
        else:
            answer = AuthAnswer("authorize handler")
            ok, value = await run_handler(handler, (frame.data,), answer,
                                          self.core.limits.handler_timeout)
        if self.state >= State.CLOSING:
            return
        if not ok:
            self.transport.send(protocol.unauthorized(value))
            self._close(Code.NOT_AUTHORIZED, "unauthorized")
            return
        identifier, meta = value
        self.user = User(identifier, meta)
        self.state = State.SYNCING
        self._held = []
        try:
            registered = await self.core.authorized(self, frame)
        except Exception:
            log.exception("could not register %r", self)
            self.fail(Code.NOT_AUTHORIZED, "the server could not register this connection")
            return
        if registered and self.state is State.SYNCING:
            self.opened()

    # -- refusals -----------------------------------------------------------------------

    def _refuse(self, code: Code, reason: str, ref: int | None = None,
                retry: float | None = None) -> None:
        if self._bad is None:
            self._bad = _BadFrames()
        self._bad.count(self, code, reason)
        self.transport.send(protocol.error(code, reason, ref, retry))

    def _flooded(self, ref: int | None, wait: float | None, reason: str) -> None:
        now = asyncio.get_running_loop().time()
        if self.guard.strikes.take(now):
            self.fail(Code.FLOOD_CLOSED, "kept flooding after many warnings")
            return
        self._refuse(Code.FLOODED, reason, ref, wait)

    def _close(self, code: int, reason: str) -> None:
        self.state = State.CLOSING
        self._inbox = None
        self.transport.close(code, reason)


class _Guard:
    """The connection's rate buckets: frames, and refusals before FLOOD_CLOSED."""

    __slots__ = ("frames", "strikes")

    def __init__(self, frame_rate: tuple[float, int] | None, now: float) -> None:
        self.frames = TokenBucket(*frame_rate, now) if frame_rate else None
        self.strikes = TokenBucket(*STRIKES, now)


class _BadFrames:
    """Counts a connection's bad frames; logs them at most once per LOG_EVERY."""

    __slots__ = ("last", "next_log", "unlogged")

    def __init__(self) -> None:
        self.unlogged = 0
        self.next_log = 0.0
        self.last = ""

    def count(self, session: Session, code: Code, reason: str) -> None:
        now = asyncio.get_running_loop().time()
        self.unlogged += 1
        self.last = f"{reason} ({int(code)})"
        if now >= self.next_log:
            self._log(session)
            self.next_log = now + LOG_EVERY

    def summary(self, session: Session) -> None:
        if self.unlogged:
            self._log(session)

    def _log(self, session: Session) -> None:
        log.warning("%r: %d bad frame(s) since the last report; the latest: %s", session,
                    self.unlogged, self.last)
        self.unlogged = 0

