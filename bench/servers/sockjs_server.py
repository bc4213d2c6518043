"""Baseline (a): a bare sockjs-tornado server that broadcasts every message with
``SockJSConnection.broadcast`` (which JSON-encodes the message once for all receivers).

The first message a client sends is its "authorization" (a JSON object with a name);
the server answers {"welcome": name} and only then counts it as a room member.
``--no-immediate-flush`` sets sockjs-tornado's ``immediate_flush=False`` (it then
coalesces each session's messages until the next loop turn).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import tornado.web
from sockjs.tornado import SockJSConnection, SockJSRouter

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, serve

members: set[BroadcastConnection] = set()


class BroadcastConnection(SockJSConnection):  # type: ignore[misc]
    name: str | None = None

    def on_message(self, message: str) -> None:
        if self.name is None:
            self.name = str(json.loads(message)["auth"])
            self.send(json.dumps({"welcome": self.name}))
            members.add(self)
            return
        self.broadcast(members, message)

    def on_close(self) -> None:
        members.discard(self)


def main() -> None:
    args = parse_args(lambda p: p.add_argument("--no-immediate-flush", action="store_true"))

    async def make_app() -> tornado.web.Application:
        settings: dict[str, Any] = {"immediate_flush": not args.no_immediate_flush}
        router = SockJSRouter(BroadcastConnection, "/sockjs", settings)
        return tornado.web.Application(router.urls)

    serve(make_app, args.port, args.gc, gc_stats=args.gc_stats)


if __name__ == "__main__":
    main()
