"""The chitchat demo: pick a name, see who is online, chat.

    python demo/app.py [--port 8080] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379/0]

Runs on the embedded default (in-memory broker and store): nothing else to start.
With ``--redis`` it keeps the chat in that Redis, so that several demo processes (see
``demo/run.sh --procs``) serve one chat. Uses only chitchat's public API.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
from typing import Any

import tornado.web

import chitchat

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = re.compile(r"^[\w .-]{1,24}$")
MAX_TEXT = 500


def make_chat(**options: Any) -> chitchat.Chat:
    chat = chitchat.Chat(**options)

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        # The demo's "authorization" is picking a name; a real app checks a token here.
        name = data.get("name", "").strip() if isinstance(data, dict) else ""
        if not NAME.match(name):
            bad({"reason": "Pick a name of 1 to 24 letters, digits, spaces, dots or dashes."})
        else:
            good(name, {"online": chat.online()})

    @chat.message
    def message(user: chitchat.User, data: Any, good: Any, bad: Any) -> None:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            bad({"reason": "Say something."})
        elif len(text) > MAX_TEXT:
            bad({"reason": f"Keep it under {MAX_TEXT} characters."})
        else:
            good({"text": text.strip()})

    return chat


class IndexHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header(
            "Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:"
        )
        self.render("index.html")


def make_app(chat: chitchat.Chat) -> tornado.web.Application:
    return tornado.web.Application(
        [(r"/", IndexHandler), *chat.router("/chat").urls],
        template_path=HERE,
        static_path=os.path.join(HERE, "static"),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL"),
                        help="a Redis URL: share the chat with other processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Behind the load balancer of demo/run.sh --procs, clients' addresses come from it.
    chat = make_chat(redis=args.redis, trusted_proxies="127.0.0.1") if args.redis else make_chat()
    server = make_app(chat).listen(args.port, args.host)
    chitchat.tune_gc()  # after start-up: fewer, shorter collector pauses (docs/benchmarks.md)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"chitchat demo ready on http://{args.host}:{args.port}/", flush=True)
    await stop.wait()
    # Graceful: refuse newcomers, let handlers answer, tell every page to reconnect
    # after a random delay (so a restarted demo is not met by all of them at once).
    server.stop()
    await chat.stop(timeout=10)
    print("chitchat demo stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
