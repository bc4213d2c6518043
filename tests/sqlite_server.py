"""A chat server on SQLiteStore, in its own process so that a test can kill it.

    python tests/sqlite_server.py --port PORT --db PATH

Token auth and the message handler of tests/conftest.py's ``make_chat``; the chat is
mounted at ``/chat`` (SockJS and ``/chat/ws``). Prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import tornado.web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import make_chat

import chitchat


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="the SQLite file (created if missing)")
    args = parser.parse_args()
    chat = make_chat(store=chitchat.SQLiteStore(args.db))
    app = tornado.web.Application(chat.router("/chat").urls)
    app.listen(args.port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
