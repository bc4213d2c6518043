"""A chat server on SQLiteStore, in its own process so that a test can kill it.

    python tests/sqlite_server.py --port PORT --db PATH [--chaos]

Token auth and the message handler of tests/conftest.py's ``make_chat``; the chat is
mounted at ``/chat`` (SockJS and ``/chat/ws``). Prints ``ready`` once listening.

``--chaos`` is for the reconnect torture test: rate limits off, a long history, and two
test-only routes: ``POST /drop?n=N`` closes N random connections at once (as a flaky
network would), ``GET /log?room=R`` answers the room's whole log as the store keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from typing import Any

import tornado.web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import make_chat

import chitchat


class DropHandler(tornado.web.RequestHandler):
    def initialize(self, chat: chitchat.Chat) -> None:
        self.chat = chat

    def post(self) -> None:
        # Test-only: reaches into the chat's sessions to cut their transports.
        sessions = [s for group in self.chat._users.values() for s in group]
        for session in random.sample(sessions, min(len(sessions), int(self.get_argument("n")))):
            session.transport.close(1011, "dropped by the test")
        self.write("ok")


class LogHandler(tornado.web.RequestHandler):
    def initialize(self, chat: chitchat.Chat) -> None:
        self.chat = chat

    async def get(self) -> None:
        room, before, log = self.get_argument("room"), None, []
        while page := await self.chat.history(room, before=before, limit=100):
            log[:0] = [{"id": m.id, "seq": m.seq, "data": m.data} for m in page]
            before = page[0].seq
        self.write(json.dumps(log))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="the SQLite file (created if missing)")
    parser.add_argument("--chaos", action="store_true")
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.chaos:
        options = {"send_rate": None, "frame_rate": None, "max_user_connections": None,
                   "history": 1000}
    chat = make_chat(store=chitchat.SQLiteStore(args.db), **options)
    routes: list[Any] = list(chat.router("/chat").urls)
    if args.chaos:
        routes += [(r"/drop", DropHandler, {"chat": chat}), (r"/log", LogHandler, {"chat": chat})]
    tornado.web.Application(routes).listen(args.port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
