"""One chat process of a cluster on Redis, for the multi-process and nginx tests.

    python tests/redis_chat_server.py --redis URL --port N [--presence-ttl S]

The chat of tests/conftest.py (token auth, ``upper:``) on ``Chat(redis=URL)``, with its
presence entries expiring after ``--presence-ttl`` seconds (short in tests, so that a
killed process's users leave quickly), rate limits off and a history long enough to
hold a whole test's conversation. Prints ``ready`` once listening.
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
    parser.add_argument("--redis", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--presence-ttl", type=float, default=20.0)
    args = parser.parse_args()
    chat = make_chat(redis=args.redis,
                     presence_backend=chitchat.RedisPresence(args.redis, ttl=args.presence_ttl),
                     history=500, send_rate=None, frame_rate=None, max_user_connections=None,
                     presence_grace=0, presence_interval=0.05)
    app = tornado.web.Application(chat.router("/chat").urls)
    app.listen(args.port, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
