"""(d): chitchat, through its public API only. SockJS at /chat/..., native at /chat/ws.

The authorize handler accepts the name the client sends; there is no message handler
(every message is accepted as sent). ``--gc`` picks the collector set-up: ``tuned``
(the default: ``chitchat.tune_gc()`` once started), ``default`` (Python's) or ``off``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tornado.web

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's chitchat
from common import parse_args, serve

import chitchat


async def make_app() -> tornado.web.Application:
    chat = chitchat.Chat()

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            good(data["name"])
        else:
            bad({"reason": "no name"})

    return tornado.web.Application(chat.router("/chat").urls)


def main() -> None:
    args = parse_args(lambda p: p.add_argument("--tune-gc", choices=["yes", "no"], default="yes"))
    after = None
    if args.tune_gc == "yes" and args.gc != "off" and hasattr(chitchat, "tune_gc"):
        after = chitchat.tune_gc
    serve(make_app, args.port, args.gc, after, args.gc_stats)


if __name__ == "__main__":
    main()
