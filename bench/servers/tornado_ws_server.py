"""Baseline (b): a bare Tornado WebSocketHandler that broadcasts every message.

The first frame a client sends is its "authorization" (a JSON object with a name); the
server answers {"welcome": name} and only then counts it as a room member. Every later
frame is written, as received, to every member with ``write_message``: the way the
Tornado documentation's chat demo does it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tornado.web
import tornado.websocket

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, serve

members: set[BroadcastHandler] = set()


class BroadcastHandler(tornado.websocket.WebSocketHandler):
    name: str | None = None

    def on_message(self, message: str | bytes) -> None:
        if self.name is None:
            self.name = str(json.loads(message)["auth"])
            self.write_message(json.dumps({"welcome": self.name}))
            members.add(self)
            return
        for member in list(members):
            try:
                member.write_message(message)
            except tornado.websocket.WebSocketClosedError:
                members.discard(member)

    def on_close(self) -> None:
        members.discard(self)


async def make_app() -> tornado.web.Application:
    return tornado.web.Application([(r"/ws", BroadcastHandler)])


if __name__ == "__main__":
    args = parse_args()
    serve(make_app, args.port, args.gc, gc_stats=args.gc_stats)
