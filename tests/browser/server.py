"""The chat server the browser tests drive, in its own process so it can be killed.

    python tests/browser/server.py PORT

Token auth as in tests/conftest.py (``{name, token: "secret-" + name}``), plus
``POST /push?user=NAME`` (body: JSON payload) to call ``chat.message(user, payload)``,
and ``/`` a blank page that loads the client. Prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import tornado.web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conftest import make_chat

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


async def main() -> None:
    port = int(sys.argv[1])
    heartbeat = float(os.environ.get("CHITCHAT_HEARTBEAT", "10"))
    chat = make_chat(heartbeat=heartbeat)
    app = tornado.web.Application([
        (r"/", PageHandler),
        (r"/harness.js", HarnessHandler),
        (r"/push", PushHandler, {"chat": chat}),
        *chat.router("/chat").urls,
    ])
    app.listen(port, "127.0.0.1")
    if len(sys.argv) > 2:
        # Another origin (same host, another port) serving a page that tries to use the
        # chat on ``port`` as the visitor: a stand-in for any other web site.
        other = tornado.web.Application([
            (r"/", OtherSiteHandler, {"chat_origin": f"http://127.0.0.1:{port}"}),
            (r"/harness.js", HarnessHandler),
        ])
        other.listen(int(sys.argv[2]), "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
