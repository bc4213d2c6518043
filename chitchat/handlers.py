"""Running an application handler: exactly one good/bad answer, on time, errors logged.

Handlers (``@chat.authorize``, ``@chat.message``, ``@chat.join``, ``@chat.edit``,
``@chat.remove``) may be plain functions or coroutines.
Each gets a fresh ``good``/``bad`` pair; the first call settles the answer and any later
call raises ``AlreadyAnsweredError``. A handler that raises before answering is answered
``bad({"error": "internal"})`` and its traceback is logged once; a handler that has not
answered within the timeout is answered ``bad({"error": "timeout"})``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any, Final

from . import jsonsafe, protocol
from ._tasks import spawn
from .errors import AlreadyAnsweredError
from .user import User

__all__ = [
    "INTERNAL", "TIMEOUT", "UNSET", "AuthAnswer", "JoinAnswer", "MessageAnswer", "Registry",
    "RemoveAnswer", "run_handler", "takes_room",
]

log = logging.getLogger("chitchat.handlers")

INTERNAL: Final = {"error": "internal"}
TIMEOUT: Final = {"error": "timeout"}


@dataclasses.dataclass(slots=True)
class Registry:
    """The application's handlers, as the Chat's decorators registered them."""

    authorize: Callable[..., Any] | None = None
    message: Callable[..., Any] | None = None
    message_takes_room: bool = False  # the message handler declares ``room``
    join: Callable[..., Any] | None = None
    edit: Callable[..., Any] | None = None
    remove: Callable[..., Any] | None = None


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: ``good()`` was called without a payload: deliver the data as the client sent it.
UNSET: Final = _Unset()

Verdict = tuple[bool, Any]


class _Answer:
    """One handler call's answer; settled exactly once."""

    __slots__ = ("future", "what")

    good: Callable[..., None]

    def __init__(self, what: str) -> None:
        self.future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self.what = what

    def settle(self, verdict: Verdict) -> None:
        if self.future.done():
            raise AlreadyAnsweredError(
                f"the {self.what} already answered (or timed out): call good() or bad() "
                "exactly once per call"
            )
        self.future.set_result(verdict)

    def expire(self, verdict: Verdict) -> None:
        if not self.future.done():
            self.future.set_result(verdict)

    def bad(self, meta: Any = None) -> None:
        """Refuse. ``meta`` (any JSON value) is shown to the client."""
        protocol.dumps(meta)  # a meta that cannot be sent fails here, at the caller
        self.settle((False, meta))


class AuthAnswer(_Answer):
    __slots__ = ()

    def good(self, user: str | User, meta: Any = None) -> None:
        """Accept the connection as ``user`` (an identifier string, or a ``User``)."""
        if isinstance(user, User):
            identifier, meta = user.id, meta if meta is not None else user.meta
        else:
            identifier = user
        if not isinstance(identifier, str) or not identifier:
            raise TypeError("good() takes the user's identifier as a non-empty string")
        if not jsonsafe.valid_text(identifier):
            raise ValueError("the user's identifier holds a lone surrogate (not Unicode)")
        protocol.dumps(meta)
        self.settle((True, (identifier, meta)))


class MessageAnswer(_Answer):
    """For ``@chat.message`` and ``@chat.edit``: ``good(payload=None)``."""

    __slots__ = ()

    def good(self, payload: Any = UNSET) -> None:
        """Accept; deliver ``payload`` instead of the data sent, if given."""
        self.settle((True, payload))


class JoinAnswer(_Answer):
    __slots__ = ()

    def good(self, meta: Any = None) -> None:
        """Admit the connection to the room; the client's join resolves with ``meta``."""
        protocol.dumps(meta)
        self.settle((True, meta))


class RemoveAnswer(_Answer):
    __slots__ = ()

    def good(self) -> None:
        """Allow the removal."""
        self.settle((True, None))


def takes_room(handler: Callable[..., Any]) -> bool:
    """True when ``handler`` declares a parameter named ``room`` (then the message
    handler is called with the room as that keyword argument)."""
    try:
        return "room" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


async def run_handler(
    handler: Callable[..., Any], args: tuple[Any, ...], answer: _Answer, timeout: float,
    **kwargs: Any,
) -> Verdict:
    """Call ``handler(*args, answer.good, answer.bad, **kwargs)`` and wait for its verdict."""
    try:
        result = handler(*args, answer.good, answer.bad, **kwargs)
    except Exception:
        log.exception("the %s raised", answer.what)
        answer.expire((False, INTERNAL))
        return answer.future.result()
    if inspect.isawaitable(result):
        task = spawn(_await(result), f"the {answer.what}")
        task.add_done_callback(lambda t: _failed(t, answer))
    if not answer.future.done():
        timer = asyncio.get_running_loop().call_later(timeout, _timed_out, answer, timeout)
        try:
            await answer.future
        finally:
            timer.cancel()
    return answer.future.result()


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _failed(task: asyncio.Task[Any], answer: _Answer) -> None:
    # spawn() has already logged the traceback; settle so the client is not kept waiting.
    if not task.cancelled() and task.exception() is not None:
        answer.expire((False, INTERNAL))


def _timed_out(answer: _Answer, timeout: float) -> None:
    if not answer.future.done():
        log.warning("the %s answered neither good() nor bad() within %s s", answer.what, timeout)
        answer.expire((False, TIMEOUT))
