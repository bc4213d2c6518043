"""Noticing a client that has stopped reading what a socket transport writes to it."""

from __future__ import annotations

import logging

from tornado.iostream import IOStream

log = logging.getLogger("chitchat.transports")


def too_slow(stream: IOStream, limit: int, who: object) -> bool:
    """True, and logged, when more than ``limit`` bytes written to ``stream`` are still
    waiting for the client. The caller then drops the connection, which closes
    ``stream``; it checks ``closed``/``is_closing`` first, so this logs once.

    Tornado keeps no public count: ``IOStream._write_buffer`` (a ``_StreamBuffer`` with
    ``len``) has been there since Tornado 5; tests/test_slow_consumer.py guards it.
    """
    buffered = stream._write_buffer
    if not buffered or len(buffered) <= limit:
        return False
    log.warning("%s stopped reading (over %d bytes unsent): disconnecting it", who, limit)
    return True
