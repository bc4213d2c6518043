"""One connection's life: authorization, in-order handling, heartbeat and limits.

A Session sits between one transport and the chat core. Frames are decoded here,
checked against the limits, and handled strictly one after another: the answer to a
frame (and the delivery of the message it carried) comes before anything is done with
the next frame, also when the application's handlers are coroutines that take varying
time. Deliveries from the hub are written straight to the transport once the session
is open; while the recent history is being fetched they are held back so that the
client sees the history first.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
from collections.abc import Callable
from typing import Any, Protocol

from . import protocol
from ._tasks import spawn
from .errors import ProtocolError
from .handlers import INTERNAL, UNSET, AuthAnswer, MessageAnswer, run_handler
from .protocol import Code
from .transports.base import RequestInfo, Transport
from .user import Message, User

__all__ = ["Core", "Limits", "Session", "State"]

log = logging.getLogger("chitchat.session")


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection settings (the Chat constructor documents each)."""

    auth_timeout: float = 10.0
    handler_timeout: float = 10.0
    heartbeat: float = 10.0
    max_frame_size: int = 64 * 1024
    max_pending: int = 100
    max_backlog: int = 1024 * 1024


class Core(Protocol):
    """What a session needs from the chat that owns it (``Chat`` implements it)."""

    limits: Limits
    authorize_handler: Callable[..., Any] | None
    message_handler: Callable[..., Any] | None

    async def join(self, session: Session) -> list[Message]:
        """Register an authorized session for delivery; return the recent history."""

    def leave(self, session: Session) -> None:
        """Forget a closed session. Idempotent."""

    async def publish(self, user: User, data: Any) -> Message:
        """Keep and deliver an accepted message; return it as delivered."""


class State(enum.IntEnum):
    CONNECTING = 0  # waiting for the auth frame
    AUTHORIZING = 1  # the authorize handler is running
    SYNCING = 2  # authorized; the history is being fetched
    OPEN = 3
    CLOSING = 4  # a fatal frame was sent; the transport closes after it
    CLOSED = 5


Pending = protocol.Auth | protocol.Send


class Session:
    """The core's side of one connection (a ``transports.base.Connection``)."""

    # Thousands of these live at once: no per-instance dict, and no inbox until needed.
    __slots__ = (
        "_auth_timer", "_draining", "_held", "_inbox", "core", "last_heard", "request",
        "state", "transport", "user",
    )

    def __init__(self, core: Core, transport: Transport, request: RequestInfo) -> None:
        self.core = core
        self.transport = transport
        self.request = request
        self.user: User | None = None
        self.state = State.CONNECTING
        self.last_heard = asyncio.get_running_loop().time()
        self._inbox: collections.deque[Pending] | None = None
        self._draining = False
        self._held: list[str] | None = None  # deliveries held back while SYNCING
        self._auth_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            core.limits.auth_timeout, self._auth_timed_out
        )

    def __repr__(self) -> str:
        who = self.user.id if self.user else "-"
        return f"<Session {who} {self.transport.name} {self.request.remote_ip}>"

    # -- called by the transport --------------------------------------------------------

    def frame_received(self, text: str) -> None:
        if self.state >= State.CLOSING:
            return
        self.last_heard = asyncio.get_running_loop().time()
        try:
            frame = protocol.decode(text, self.core.limits.max_frame_size)
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
            self._refuse(Code.NOT_AUTHORIZED, "send auth first", frame.ref)
        elif self._inbox and len(self._inbox) >= self.core.limits.max_pending:
            self._refuse(Code.FLOODED, "too many frames waiting to be handled", frame.ref)
        else:
            self._enqueue(frame)

    def closed(self) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self._cancel_auth_timer()
        self._inbox = None
        self._held = None
        self.core.leave(self)

    # -- called by the core -------------------------------------------------------------

    def deliver(self, frame: str) -> None:
        """Write a ``messages`` frame from the hub (held back while syncing)."""
        if self.state is State.OPEN:
            self.transport.send(frame)
        elif self._held is not None:
            self._held.append(frame)

    def heartbeat(self, now: float) -> None:
        """Ping the client, or close if nothing was heard for two intervals."""
        if self.state not in (State.SYNCING, State.OPEN):
            return
        if now - self.last_heard > 2 * self.core.limits.heartbeat:
            self.fail(Code.HEARTBEAT_TIMEOUT, "nothing heard from the client")
        else:
            self.transport.send(protocol.PING)

    def fail(self, code: Code, reason: str) -> None:
        """Send a fatal error frame, then close once it has been flushed."""
        if self.state >= State.CLOSING:
            return
        log.info("%r closed: %s (%d)", self, reason, code)
        self.transport.send(protocol.error(code, reason))
        self._close(code, reason)

    # -- the in-order handling of auth and send frames ----------------------------------

    def _enqueue(self, frame: Pending) -> None:
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append(frame)
        if not self._draining:
            self._draining = True
            spawn(self._drain(), f"handling frames of {self!r}")

    async def _drain(self) -> None:
        try:
            while self._inbox and self.state < State.CLOSING:
                frame = self._inbox.popleft()
                if isinstance(frame, protocol.Auth):
                    await self._authorize(frame)
                else:
                    await self._handle_send(frame)
        finally:
            self._draining = False

    async def _authorize(self, frame: protocol.Auth) -> None:
        if frame.version != protocol.VERSION:
            self.fail(Code.UNSUPPORTED_VERSION, f"this server speaks version {protocol.VERSION}")
            return
        handler = self.core.authorize_handler
        if handler is None:
            log.warning("no @chat.authorize handler is registered: refusing %r", self)
            ok, value = False, {"error": "no authorize handler"}
        else:
            limits = self.core.limits
            answer = AuthAnswer("authorize handler")
            ok, value = await run_handler(handler, (frame.data,), answer, limits.handler_timeout)
        if self.state >= State.CLOSING:
            return
        if not ok:
            self._cancel_auth_timer()
            self.transport.send(protocol.unauthorized(value))
            self._close(Code.NOT_AUTHORIZED, "unauthorized")
            return
        identifier, meta = value
        self._cancel_auth_timer()
        self.user = User(identifier, meta)
        self.state = State.SYNCING
        self._held = []
        heartbeat_ms = int(self.core.limits.heartbeat * 1000)
        self.transport.send(protocol.welcome(identifier, meta, heartbeat_ms))
        try:
            history = await self.core.join(self)
        except Exception:
            log.exception("could not register %r", self)
            self.fail(Code.NOT_AUTHORIZED, "the server could not register this connection")
            return
        if self.state is not State.SYNCING:
            return
        if history:
            self.transport.send(protocol.messages([m.raw for m in history]))
        held, self._held = self._held, None
        self.state = State.OPEN
        for delivery in held:
            self.transport.send(delivery)

    async def _handle_send(self, frame: protocol.Send) -> None:
        assert self.user is not None
        handler = self.core.message_handler
        if handler is None:
            ok, value = True, UNSET
        else:
            answer = MessageAnswer("message handler")
            args = (self.user, frame.data)
            ok, value = await run_handler(handler, args, answer, self.core.limits.handler_timeout)
        if not ok:
            self.transport.send(protocol.nack(frame.ref, value))
            return
        data = frame.data if value is UNSET else value
        try:
            message = await self.core.publish(self.user, data)
        except (TypeError, ValueError):
            log.exception("the message handler gave good() a payload that is not JSON")
            self.transport.send(protocol.nack(frame.ref, INTERNAL))
        except Exception:
            log.exception("could not publish a message from %r", self)
            self.transport.send(protocol.nack(frame.ref, INTERNAL))
        else:
            self.transport.send(protocol.ack(frame.ref, message))

    # -- helpers ------------------------------------------------------------------------

    def _refuse(self, code: Code, reason: str, ref: int | None = None) -> None:
        log.info("%r sent a bad frame: %s (%d)", self, reason, code)
        self.transport.send(protocol.error(code, reason, ref))

    def _close(self, code: int, reason: str) -> None:
        self.state = State.CLOSING
        self._cancel_auth_timer()
        self._inbox = None
        self.transport.close(code, reason)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.state in (State.CONNECTING, State.AUTHORIZING):
            self.fail(Code.AUTH_TIMEOUT, "not authorized in time")

    def _cancel_auth_timer(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
