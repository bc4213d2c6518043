"""(d): chitchat, through its public API only. SockJS at /chat/..., native at /chat/ws.

The authorize handler accepts the name the client sends; there is no message handler
(every message is accepted as sent); the heartbeat is chitchat's default (10 s) unless
``--heartbeat`` says otherwise. Once listening, the server calls ``chitchat.tune_gc()``
(``--tune-gc no`` keeps Python's collector settings; ``--gc off`` disables it: the
benchmark's GC ablation).

The abuse limits a benchmark would trip are off: the per-user send rate and the
per-connection frame rate (a refused message must never count as delivered throughput)
and the per-user connection cap (the load generator may reuse names). Everything else,
presence in the default room included, is chitchat's default (``--presence off``: the
connect storm's presence ablation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import tornado.web

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's chitchat
from common import parse_args, serve

import chitchat


#: The limits turned off for the benchmark (see the module doc).
LIMITS_OFF = {"send_rate": None, "frame_rate": None, "max_user_connections": None}


async def make_app(heartbeat: float, presence: bool,
                   options: dict[str, Any]) -> tornado.web.Application:
    chat = chitchat.Chat(**{"heartbeat": heartbeat, "presence": presence, **LIMITS_OFF,
                            **options})

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
        p.add_argument("--presence", choices=["on", "off"], default="on")
        p.add_argument("--option", action="append", default=[], metavar="NAME=JSON",
                       help="any other Chat option, e.g. presence_interval=1.0 "
                       "(for experiments; the suite does not use it)")

    args = parse_args(options)
    after = None
    if args.tune_gc == "yes" and args.gc != "off" and hasattr(chitchat, "tune_gc"):
        after = chitchat.tune_gc
    options = {name: json.loads(value)
               for name, _, value in (o.partition("=") for o in args.option)}
    serve(lambda: make_app(args.heartbeat, args.presence == "on", options), args.port, args.gc,
          after, args.gc_stats)


if __name__ == "__main__":
    main()
