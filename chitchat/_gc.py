"""Tuning Python's cyclic garbage collector for a chat server: ``tune_gc()``.

A chat server holds many long-lived objects (every connection is a few dozen: the
Tornado handler and stream, the SockJS session, the chitchat session, their dicts and
timers) and allocates a steady trickle of short-lived ones. With Python's default
thresholds (700, 10, 10) the collector runs a young collection every 700 net
allocations and, every 100 of those, a full collection that walks every tracked object:
with thousands of connections that is a pause of tens of milliseconds in the middle of
a fan-out, which is where a chat server's tail latency comes from.

``tune_gc()`` does three things, once the application is set up:

1. ``gc.collect()`` then ``gc.freeze()``: everything alive after start-up (modules,
   classes, the application, the routes) moves to the permanent generation and is never
   walked again.
2. A larger young-generation threshold (``threshold``, default 50,000): young
   collections run ~70 times less often; each one still only walks young objects.
3. A larger oldest-generation multiplier (``full_every``, default 100 young-to-middle
   promotions instead of 10), so full collections are rarer still. CPython also skips a
   full collection until the objects that survived since the last one exceed a quarter
   of those it walked then.

Nothing is disabled: reference cycles are still reclaimed, later. Measured effect
(docs/benchmarks.md): fewer and shorter pauses at the same throughput. Call it from
your start-up code after building the application; calling it again re-freezes what
is alive at that moment (e.g. after a planned warm-up).
"""

from __future__ import annotations

import gc

from .errors import ConfigurationError

__all__ = ["tune_gc"]

#: Defaults chosen from docs/benchmarks.md's measurements.
DEFAULT_THRESHOLD = 50_000
DEFAULT_MIDDLE_EVERY = 20
DEFAULT_FULL_EVERY = 100


def tune_gc(
    threshold: int = DEFAULT_THRESHOLD,
    middle_every: int = DEFAULT_MIDDLE_EVERY,
    full_every: int = DEFAULT_FULL_EVERY,
    *,
    freeze: bool = True,
) -> tuple[int, int, int]:
    """Set the collector up for a long-running chat server; returns the old thresholds.

    ``threshold``: net allocations between young collections (Python's default: 700).
    ``middle_every``/``full_every``: young (resp. middle) collections between middle
    (resp. full) ones (Python's defaults: 10 and 10). ``freeze``: collect, then move every object
    alive now to the permanent generation (``gc.freeze()``), so that full collections
    never walk the start-up state again. Process-wide: it affects the whole interpreter,
    so it is the application's call, never done by chitchat on its own.
    """
    if threshold < 1 or middle_every < 1 or full_every < 1:
        raise ConfigurationError("gc thresholds must be positive")
    old = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(threshold, middle_every, full_every)
    return old
