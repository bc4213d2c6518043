"""(d): chitchat, through its public API only. SockJS at /chat/..., native at /chat/ws.

The authorize handler accepts the name the client sends; there is no message handler
(every message is accepted as sent); the heartbeat is chitchat's default (10 s) unless
``--heartbeat`` says otherwise. Once listening, the server calls ``chitchat.tune_gc()``
(``--tune-gc no`` keeps Python's collector settings; ``--gc off`` disables it: the
benchmark's GC ablation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tornado.web

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's chitchat
from common import parse_args, serve

import chitchat


async def make_app(heartbeat: float) -> tornado.web.Application:
    chat = chitchat.Chat(heartbeat=heartbeat)

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            good(data["name"])
        else:
            bad({"reason": "no name"})

    return tornado.web.Application(chat.router("/chat").urls)


def main() -> None:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tune-gc", choices=["yes", "no"], default="yes")
        p.add_argument("--heartbeat", type=float, default=10.0,
                       help="seconds between pings (chitchat's default: 10)")

    args = parse_args(options)
    after = None
    if args.tune_gc == "yes" and args.gc != "off" and hasattr(chitchat, "tune_gc"):
        after = chitchat.tune_gc
    serve(lambda: make_app(args.heartbeat), args.port, args.gc, after, args.gc_stats)


if __name__ == "__main__":
    main()
