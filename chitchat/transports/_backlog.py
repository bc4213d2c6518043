"""How much a socket transport has written that its client has not taken yet."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("chitchat.transports")


def backlog(stream: Any) -> int:
    """Bytes queued in a Tornado IOStream's write buffer.

    Tornado keeps no public count; ``_write_buffer`` (a ``_StreamBuffer`` with ``len``)
    has been there since Tornado 5. Without it, report 0 (no protection, no crash).
    """
    buffer = getattr(stream, "_write_buffer", None)
    try:
        return len(buffer) if buffer is not None else 0
    except TypeError:
        return 0


def too_slow(stream: Any, limit: int, who: object) -> bool:
    """True (and logged once, by the caller's close) when ``stream`` is over ``limit``."""
    if backlog(stream) <= limit:
        return False
    log.warning("%s stopped reading (over %d bytes unsent): disconnecting it", who, limit)
    return True
