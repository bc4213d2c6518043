"""Limits against abuse: rate buckets, connection caps, the client's address, deadlines.

Everything here is plain bookkeeping on the event loop's clock; the Chat and the
Session decide what to do when a limit is hit (docs/SECURITY.md lists each limit).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ConfigurationError
from .transports.base import RequestInfo

__all__ = ["Caps", "Deadlines", "TokenBucket", "client_ip", "parse_networks", "rate"]

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``per_second``; one per event."""

    __slots__ = ("burst", "per_second", "stamp", "tokens")

    def __init__(self, per_second: float, burst: int, now: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.per_second


def rate(name: str, value: tuple[float, int] | None) -> tuple[float, int] | None:
    """Check a ``(per_second, burst)`` option; None turns the limit off."""
    if value is None:
        return None
    try:
        per_second, burst = value
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} is (per second, burst) or None") from None
    if not per_second > 0 or not isinstance(burst, int) or burst < 1:
        raise ConfigurationError(f"{name} needs a positive rate and a burst of at least 1")
    return float(per_second), burst


class Caps:
    """Counts open connections in total and per client address, against their caps
    (None: no cap). Unauthenticated connections count too."""

    def __init__(self, total: int | None, per_ip: int | None) -> None:
        for name, value in (("max_connections", total), ("max_ip_connections", per_ip)):
            if value is not None and value < 1:
                raise ConfigurationError(f"{name} must be at least 1 (or None)")
        self.max_total = total
        self.max_per_ip = per_ip
        self.total = 0
        self._by_ip: collections.Counter[str] = collections.Counter()

    def admit(self, ip: str | None) -> str | None:
        """Count a new connection from ``ip``; or, over a cap, say why and count nothing."""
        if self.max_total is not None and self.total >= self.max_total:
            return "the server has as many connections as it takes"
        if (self.max_per_ip is not None and ip is not None
                and self._by_ip[ip] >= self.max_per_ip):
            return "too many connections from this address"
        self.total += 1
        if ip is not None and self.max_per_ip is not None:
            self._by_ip[ip] += 1
        return None

    def release(self, ip: str | None) -> None:
        """A connection that ``admit`` counted has closed."""
        self.total -= 1
        if ip is not None and self.max_per_ip is not None:
            self._by_ip[ip] -= 1
            if self._by_ip[ip] <= 0:
                del self._by_ip[ip]


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies``: addresses or networks (``"10.0.0.0/8"``, ``"::1"``)."""
    if isinstance(entries, str):
        entries = [entries]
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)
    except ValueError as exc:
        raise ConfigurationError(f"trusted_proxies: {exc}") from None


def client_ip(request: RequestInfo, trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    right-most ``X-Forwarded-For`` address that is not itself a trusted proxy.

    Without ``trusted`` the header is ignored: anyone can send it.
    """
    ip = request.remote_ip
    if not trusted or not _within(ip, trusted):
        return ip
    forwarded = request.headers.get("X-Forwarded-For", "")
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _within(hop, trusted):
            return hop
    return ip


def _within(ip: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


class Deadlines(Generic[T]):
    """Items that each expire ``delay`` seconds after being added, on one shared timer
    (one ``call_later`` for all of them, instead of one per item: the connect path of a
    reconnect storm). ``expire(item)`` is called for each item still held when its time
    comes; ``discard`` lets an item go before that (an authorized or closed connection:
    nothing should keep it alive until its deadline)."""

    def __init__(self, delay: float, expire: Callable[[T], None]) -> None:
        self._delay = delay
        self._expire = expire
        # item -> its deadline; one delay for all, so insertion order is deadline order.
        self._items: collections.OrderedDict[T, float] = collections.OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        self._items[item] = loop.time() + self._delay
        if self._timer is None:
            self._timer = loop.call_later(self._delay, self._fire)

    def discard(self, item: T) -> None:
        self._items.pop(item, None)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._items.clear()

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._timer = None
        items = self._items
        while items:
            item, when = next(iter(items.items()))
            if when > now:
                self._timer = loop.call_at(when, self._fire)
                return
            del items[item]
            self._expire(item)
