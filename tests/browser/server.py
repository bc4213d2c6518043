"""The chat server the browser tests drive, in its own process so it can be killed.

    python tests/browser/server.py PORT [OTHER_SITE_PORT]

Token auth as in tests/conftest.py (``{name, token: "secret-" + name}``), plus
``POST /push?user=NAME`` (body: JSON payload) to call ``chat.message(user, payload)``,
``GET /unread?user=NAME`` (``await chat.unread(user)`` as JSON), and ``/`` a blank page
that loads the client. Prints ``ready`` once listening.

A message whose text starts with ``hold:`` waits in the message handler until ``POST
/release`` (from then on none waits); ``GET /held?count=N`` answers once N such handler
calls have begun: a send the server has but has not answered yet, on demand.

Environment:

- ``CHITCHAT_OPTIONS``: a JSON object of ``Chat`` keyword options (``history``,
  ``presence_grace``, ``typing_ttl``, ...); ``CHITCHAT_HEARTBEAT`` (seconds) is the
  heartbeat when those do not name one.
- ``CHITCHAT_DB``: keep the rooms' logs in this SQLite file (``chitchat.SQLiteStore``;
  created if missing) instead of in memory, so that a restart on it loses nothing.
- ``CHITCHAT_STOP_RETRY``: the ``retry`` window (seconds, default 1) given to
  ``chat.stop()`` on SIGTERM.
- ``CHITCHAT_REUSE_PORT=1``: listen with SO_REUSEPORT, so that a successor can listen
  on the same port before this one stops (a rolling restart).

SIGTERM (or SIGINT): stop listening, ``await chat.stop()``, print ``stopped``, exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conftest import make_chat

import chitchat

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>harness</title>
<script src="/chat/chitchat.js"></script><script src="/harness.js"></script></head>
<body></body></html>"""


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


class HarnessHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        with open(os.path.join(os.path.dirname(__file__), "harness.js"), "rb") as f:
            self.write(f.read())


class OtherSiteHandler(tornado.web.RequestHandler):
    def initialize(self, chat_origin: str) -> None:
        self.chat_origin = chat_origin

    def get(self) -> None:
        chat = self.chat_origin + "/chat"
        page = PAGE.replace('src="/chat/chitchat.js"', f'src="{chat}/chitchat.js"')
        self.write(page.replace("<body>", f"<body><script>CHAT_URL = '{chat}';</script>"))


class PushHandler(tornado.web.RequestHandler):
    def initialize(self, chat: object) -> None:
        self.chat = chat

    async def post(self) -> None:
        await self.chat.message(self.get_argument("user"), json.loads(self.request.body))  # type: ignore[attr-defined]
        self.write("ok")


class UnreadHandler(tornado.web.RequestHandler):
    def initialize(self, chat: object) -> None:
        self.chat = chat

    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(await self.chat.unread(self.get_argument("user"))))  # type: ignore[attr-defined]


class Gate:
    """Holds ``hold:`` messages in the message handler until released (see the top)."""

    def __init__(self) -> None:
        self.held = 0
        self.changed = asyncio.Condition()
        self.released = asyncio.Event()

    def wrap(self, handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def gated(user: object, data: Any, good: Any, bad: Any) -> None:
            if isinstance(data, dict) and str(data.get("text", "")).startswith("hold:"):
                async with self.changed:
                    self.held += 1
                    self.changed.notify_all()
                await self.released.wait()
            await handler(user, data, good, bad)
        return gated


class HeldHandler(tornado.web.RequestHandler):
    def initialize(self, gate: Gate) -> None:
        self.gate = gate

    async def get(self) -> None:
        count = int(self.get_argument("count", "1"))
        async with self.gate.changed:
            await self.gate.changed.wait_for(lambda: self.gate.held >= count)
        self.write(str(self.gate.held))

    def post(self) -> None:
        self.gate.released.set()
        self.write("released")


def chat_options() -> dict[str, object]:
    options: dict[str, object] = {"heartbeat": float(os.environ.get("CHITCHAT_HEARTBEAT", "10"))}
    options.update(json.loads(os.environ.get("CHITCHAT_OPTIONS", "{}")))
    if os.environ.get("CHITCHAT_DB"):
        options["store"] = chitchat.SQLiteStore(os.environ["CHITCHAT_DB"])
    return options


async def main() -> None:
    port = int(sys.argv[1])
    chat = make_chat(**chat_options())
    gate = Gate()
    handler = chat.registry.message
    assert handler is not None
    chat.message(gate.wrap(handler))
    app = tornado.web.Application([
        (r"/", PageHandler),
        (r"/harness.js", HarnessHandler),
        (r"/push", PushHandler, {"chat": chat}),
        (r"/unread", UnreadHandler, {"chat": chat}),
        (r"/held", HeldHandler, {"gate": gate}),
        (r"/release", HeldHandler, {"gate": gate}),
        *chat.router("/chat").urls,
    ])
    server = app.listen(port, "127.0.0.1",
                        reuse_port=os.environ.get("CHITCHAT_REUSE_PORT") == "1")
    if len(sys.argv) > 2:
        # Another origin (same host, another port) serving a page that tries to use the
        # chat on ``port`` as the visitor: a stand-in for any other web site.
        other = tornado.web.Application([
            (r"/", OtherSiteHandler, {"chat_origin": f"http://127.0.0.1:{port}"}),
            (r"/harness.js", HarnessHandler),
        ])
        other.listen(int(sys.argv[2]), "127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    # Listening stops first: a successor on the same port gets every new connection.
    server.stop()
    await chat.stop(retry=float(os.environ.get("CHITCHAT_STOP_RETRY", "1")))
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
