"""The one place background work starts, so that no failure vanishes silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("chitchat")

# Running tasks are referenced here until they finish: the event loop itself keeps only
# weak references, and a task nobody holds can be collected mid-flight.
_running: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
    """Run ``coro`` in the background; if it raises, log ``what`` with the traceback once.

    The caller may still await the returned task to get the result or the exception.
    """
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(lambda t: _finished(t, what))
    return task


def _finished(task: asyncio.Task[Any], what: str) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())
