"""CORS on sockjs-tornado's HTTP routes: only pages the chat allows may read answers.

sockjs-tornado 1.0.7's ``PreflightHandler.preflight`` (called by ``/info``, ``xhr``,
``xhr_send``, ``xhr_streaming``, ``eventsource``, ``chunking_test`` and their OPTIONS
preflights) copies any ``Origin`` into ``Access-Control-Allow-Origin`` with
``Access-Control-Allow-Credentials: true``, so a page on any web site could read what
the chat answers its visitor. ``with_checked_cors(handler)`` returns a subclass of such a
handler that asks the chat's ``OriginPolicy`` first:

- an allowed origin (the serving host itself, one in ``allowed_origins``, any with
  ``"*"``), or a request without ``Origin``, gets exactly sockjs-tornado's answer;
- a refused origin gets no ``Access-Control-*`` header at all (the browser then refuses
  the page the answer), and its OPTIONS preflight gets ``403`` with an empty body and
  nothing else of sockjs-tornado's (no year-long cache headers).

The request itself is still served: a POST that opens a session is refused by the chat
core (error 4004, as over every transport), and a non-browser client can send any
``Origin`` it likes anyway. CORS only decides which *pages* may read the answers.
"""

from __future__ import annotations

import functools
from typing import Any

from sockjs.tornado.basehandler import PreflightHandler  # type: ignore[import-untyped]

__all__ = ["needs_checked_cors", "with_checked_cors"]


class _CheckedCors:
    """Mixed in before a sockjs-tornado ``PreflightHandler`` subclass (see the module doc).

    ``self.server`` is the ``ChitchatSockJSRouter``: it knows the Chat (``.chat``) and
    logs the refusals (``.cors_refusals``, a ``transports.sockjs.RefusalLog``).
    """

    server: Any
    request: Any

    def _cors_allowed(self) -> bool:
        headers = self.request.headers
        origin = headers.get("Origin")
        if self.server.chat.origins.allows(origin, headers.get("Host")):
            return True
        self.server.cors_refusals.refused(origin, self.request.path)
        return False

    def preflight(self) -> None:
        # Called first thing by every CORS-aware route of sockjs-tornado.
        if self._cors_allowed():
            super().preflight()  # type: ignore[misc]

    def verify_origin(self) -> bool:
        # sockjs-tornado's own hook (it always says yes); options() below answers a
        # refused origin before sockjs-tornado would ask it.
        return self._cors_allowed()

    def options(self, *args: Any, **kwargs: Any) -> None:
        if self._cors_allowed():
            super().options(*args, **kwargs)  # type: ignore[misc]
            return
        self.set_status(403)  # type: ignore[attr-defined]
        self.finish()  # type: ignore[attr-defined]


def needs_checked_cors(handler: type) -> bool:
    """True for the sockjs-tornado handlers that answer with CORS headers."""
    return issubclass(handler, PreflightHandler)


@functools.cache
def with_checked_cors(handler: type) -> type:
    """``handler`` (a sockjs-tornado ``PreflightHandler`` subclass) with CORS headers
    only for origins the chat allows. The same class for the same ``handler``."""
    if not needs_checked_cors(handler):
        raise TypeError(f"{handler.__name__} is not a sockjs-tornado PreflightHandler")
    return type("CorsChecked" + handler.__name__, (_CheckedCors, handler),
                {"__module__": __name__, "__doc__": handler.__doc__ or ""})
