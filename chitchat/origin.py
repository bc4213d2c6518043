"""Which web pages may open a chat connection: the Origin check shared by transports."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class OriginPolicy:
    """Decides whether a browser page at ``Origin`` may talk to this server.

    - The page's own server is always allowed: the Origin's host and port equal the
      request's ``Host`` header (another port on the same host is another origin).
    - ``allowed`` adds origins, each written ``"https://app.example.com"`` (scheme, host
      and optional port) or ``"app.example.com:8443"`` (any scheme).
    - ``"*"`` (only when given explicitly) allows every origin.
    - A request without an Origin header is allowed: browsers send Origin on every
      WebSocket handshake and every cross-origin request, so its absence means a
      same-origin GET or a client that is not a browser. ``Origin: null`` (sandboxed
      frames, ``file:`` pages) is refused unless ``"*"``.
    """

    def __init__(self, allowed: str | Iterable[str] | None = None) -> None:
        self.allow_all = allowed == "*"
        entries = [] if allowed is None or isinstance(allowed, str) else list(allowed)
        if isinstance(allowed, str) and allowed != "*":
            entries = [allowed]
        self._origins: set[str] = set()
        self._hosts: set[str] = set()
        for entry in entries:
            entry = entry.strip().lower().rstrip("/")
            if "://" in entry:
                self._origins.add(_normalize_origin(entry) or entry)
            else:
                self._hosts.add(entry)

    def allows(self, origin: str | None, host: str | None) -> bool:
        if self.allow_all or origin is None:
            return True
        normalized = _normalize_origin(origin.strip().lower())
        if normalized is None:
            return False
        netloc = normalized.split("://", 1)[1]
        scheme = normalized.split("://", 1)[0]
        if host and netloc == _normalize_host(host.strip().lower(), scheme):
            return True
        return normalized in self._origins or netloc in self._hosts or (
            netloc.rsplit(":", 1)[0] in self._hosts
        )

    def frame_ancestors(self) -> str:
        """The CSP ``frame-ancestors`` value that matches this policy (for iframe pages)."""
        if self.allow_all:
            return "*"
        return " ".join(["'self'", *sorted(self._origins)])


def _normalize_origin(origin: str) -> str | None:
    """``scheme://host:port`` with the default port made explicit, or None if unparsable."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    port = port or _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}:{port}"


def _normalize_host(host: str, scheme: str) -> str:
    if host.endswith("]") or ":" not in host:  # no port given (IPv6 literal or name)
        return f"{host}:{_DEFAULT_PORTS.get(scheme, 80)}"
    return host
