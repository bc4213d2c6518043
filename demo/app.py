"""The chitchat demo: pick a name, join rooms, chat.

    python demo/app.py [--port 8080] [--host 127.0.0.1] [--db PATH | --memory | --redis URL]
                       [--history 50] [--typing-ttl 5]

Keeps the chat in a SQLite file (``.demo-chat.db`` in the repository, or ``--db PATH``),
so a restarted demo still has every room's messages: nothing else to start.
``--memory`` keeps everything in memory (gone when it stops). With ``--redis`` it keeps
the chat in that Redis, so that several demo processes (see ``demo/run.sh --procs``)
serve one chat. Uses only chitchat's public API. The page (index.html, static/) shows
rooms with unread counts, members, typing, history paging, read receipts, edits,
deletes, reactions and the outbox.
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
DEFAULT_DB = os.path.join(os.path.dirname(HERE), ".demo-chat.db")  # gitignored
# Names: 1 to 32 characters, anything printable (the page shows names as text only).
NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,32}")
# Room names: 1 to 40 letters, digits, underscores, spaces or dashes, not starting or
# ending with a space. (chitchat itself allows far more; this is the demo's own rule.)
ROOM = re.compile(r"(?=.{1,40}\Z)[\w-](?:[\w -]*[\w-])?")
MAX_TEXT = 500


def make_chat(**options: Any) -> chitchat.Chat:
    chat = chitchat.Chat(**options)

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        # The demo's "authorization" is picking a name; a real app checks a token here.
        name = data.get("name", "").strip() if isinstance(data, dict) else ""
        if not NAME.fullmatch(name):
            bad({"reason": "Pick a name of 1 to 32 characters."})
        else:
            good(name)

    @chat.join
    def join(user: chitchat.User, room: str, data: Any, good: Any, bad: Any) -> None:
        # Any well-named room is open to everyone: joining a new name creates it.
        if ROOM.fullmatch(room):
            good()
        else:
            bad({"reason": "Room names are 1 to 40 letters, digits, spaces or dashes."})

    def checked_text(data: Any, good: Any, bad: Any) -> None:
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            bad({"reason": "Say something."})
        elif len(text) > MAX_TEXT:
            bad({"reason": f"Keep it under {MAX_TEXT} characters."})
        else:
            good({"text": text.strip()})

    @chat.message
    def message(user: chitchat.User, data: Any, good: Any, bad: Any) -> None:
        checked_text(data, good, bad)

    # With these two handlers registered chitchat leaves the decision to them, so each
    # checks authorship itself (without them it would allow only the author, too).
    @chat.edit
    def edit(user: chitchat.User, message: chitchat.Message, data: Any, good: Any,
             bad: Any) -> None:
        if message.user != user.id:
            bad({"reason": "You can only edit your own messages."})
        else:
            checked_text(data, good, bad)

    @chat.remove
    def remove(user: chitchat.User, message: chitchat.Message, good: Any, bad: Any) -> None:
        if message.user != user.id:
            bad({"reason": "You can only delete your own messages."})
        else:
            good()

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Every command-line flag of the demo (one place, so new ones are easy to add)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    kept = parser.add_mutually_exclusive_group()  # where the chat is kept
    kept.add_argument("--db", metavar="PATH",
                      help="the SQLite file (default: .demo-chat.db in the repository)")
    kept.add_argument("--memory", action="store_true",
                      help="keep everything in memory: gone when the demo stops")
    kept.add_argument("--redis", default=os.environ.get("REDIS_URL"),
                      help="a Redis URL: share the chat with other processes")
    parser.add_argument("--history", type=int, default=50, metavar="N",
                        help="messages a page gets when it opens a room (default 50)")
    parser.add_argument("--typing-ttl", type=float, default=5.0, metavar="SECONDS",
                        help="how long 'is typing...' lasts after the last key (default 5)")
    return parser.parse_args(argv)


def chat_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Chat's keyword options for these flags."""
    options: dict[str, Any] = {"history": args.history, "typing_ttl": args.typing_ttl}
    if args.memory:
        pass  # chitchat's own default
    elif args.redis and not args.db:  # (--redis, or REDIS_URL in the environment)
        # Behind the load balancer of demo/run.sh --procs, clients' addresses come from it.
        options.update(redis=args.redis, trusted_proxies="127.0.0.1")
    else:
        options.update(store=chitchat.SQLiteStore(args.db or DEFAULT_DB))
    return options


async def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = chat_options(args)
    chat = make_chat(**options)
    server = make_app(chat).listen(args.port, args.host)
    chitchat.tune_gc()  # after start-up: fewer, shorter collector pauses (docs/benchmarks.md)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kept = "in memory" if args.memory else "in Redis" if "redis" in options else (
        f"in {options['store'].path}")
    print(f"chitchat demo ready on http://{args.host}:{args.port}/ (the chat is kept {kept})",
          flush=True)
    await stop.wait()
    # Graceful: refuse newcomers, let handlers answer, tell every page to reconnect
    # after a random delay (so a restarted demo is not met by all of them at once).
    server.stop()
    await chat.stop(timeout=10)
    print("chitchat demo stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
