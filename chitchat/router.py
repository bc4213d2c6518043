"""Mounting a Chat into a Tornado application under a URL prefix."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import tornado.web
from sockjs.tornado import static as sockjs_static  # type: ignore[import-untyped]

from .cors import needs_checked_cors, with_checked_cors
from .transports.sockjs import ChitchatSockJSRouter
from .transports.websocket import WebSocketTransport

if TYPE_CHECKING:
    from .chat import Chat

__all__ = ["CLIENT_SCRIPT", "SAFE_SOCKJS_SETTINGS", "ChatRouter"]

#: The built browser client (sockjs-client included), shipped inside the package.
CLIENT_SCRIPT = os.path.join(os.path.dirname(__file__), "static", "chitchat.js")

#: sockjs-tornado settings chitchat changes from the library's defaults, and why:
SAFE_SOCKJS_SETTINGS: dict[str, Any] = {
    # jsonp reflects its callback parameter (XSS); htmlfile is broken with sockjs-client 1.6.
    "disabled_transports": ["jsonp", "htmlfile"],
    # Only sticky load balancers need JSESSIONID; by default it is set with no flags.
    "jsessionid": False,
}


class ChatRouter:
    """The URL rules for one Chat under ``prefix``; add ``urls`` to an Application.

    - ``<prefix>/chitchat.js``: the browser client, sockjs-client included.
    - ``<prefix>/ws``: the native WebSocket transport (``websocket=False`` leaves it out).
    - ``<prefix>/...``: SockJS, through sockjs-tornado, with jsonp and htmlfile off, no
      JSESSIONID cookie, ``sockjs_url`` pointing at the bundle above (the iframe-*
      transports load it), the iframe page framable only by allowed origins, and CORS
      headers only for allowed origins (``chitchat.cors``). ``sockjs_settings``
      overrides any sockjs-tornado setting.
    """

    def __init__(
        self,
        chat: Chat,
        prefix: str = "/chat",
        *,
        websocket: bool = True,
        sockjs_settings: dict[str, Any] | None = None,
    ) -> None:
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        settings = dict(SAFE_SOCKJS_SETTINGS, sockjs_url=prefix + "/chitchat.js")
        settings.update(sockjs_settings or {})
        self.prefix = prefix
        self.chat = chat
        self.sockjs = ChitchatSockJSRouter(chat, prefix, settings)
        rules: list[Any] = [
            (prefix + r"/(chitchat\.js)", ClientScriptHandler,
             {"path": os.path.dirname(CLIENT_SCRIPT)}),
        ]
        if websocket:
            rules.append((prefix + "/ws", WebSocketTransport, {"chat": chat}))
        disabled = settings.get("disabled_transports", [])
        for rule in self.sockjs.urls:
            pattern, handler, kwargs = rule
            if handler is sockjs_static.IFrameHandler:
                handler = FramableIFrameHandler
            elif needs_checked_cors(handler):
                handler = with_checked_cors(handler)
            if pattern.endswith("/jsonp_send$") and "jsonp" in disabled:
                continue  # sockjs-tornado keeps this route even with jsonp off
            rules.append((pattern, handler, kwargs))
        self.urls = rules


class ClientScriptHandler(tornado.web.StaticFileHandler):
    """Serves the built client; says how to build it when it is missing."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if not os.path.exists(absolute_path):
            raise tornado.web.HTTPError(
                500, "chitchat.js is not built: run `cd static && npm ci && npm run build`, "
                "or install chitchat with pip (which builds it)"
            )
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")


class FramableIFrameHandler(sockjs_static.IFrameHandler):  # type: ignore[misc]
    """sockjs-tornado's iframe page, framable only by the origins that may connect.

    The iframe-* transports run inside this page, on the chat server's own origin: a
    page elsewhere that framed it could talk as the visiting user.
    """

    def get(self) -> None:
        ancestors = self.server.chat.origins.frame_ancestors()
        if ancestors != "*":
            self.set_header("Content-Security-Policy", f"frame-ancestors {ancestors}")
        super().get()
