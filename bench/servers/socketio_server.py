"""Baseline (c): python-socketio's AsyncServer on Tornado, one room, a room broadcast.

A client authorizes with the Socket.IO connect ``auth`` payload (a name); the connect
handler puts it in the room. Every "msg" event is emitted to the room.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import socketio
import tornado.web

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, serve

ROOM = "chat"


async def make_app() -> tornado.web.Application:
    sio = socketio.AsyncServer(async_mode="tornado")

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> bool:
        if not isinstance(auth, dict) or not auth.get("name"):
            return False
        await sio.enter_room(sid, ROOM)
        return True

    @sio.event
    async def msg(sid: str, data: Any) -> None:
        await sio.emit("msg", data, room=ROOM)

    return tornado.web.Application([(r"/socket.io/", socketio.get_tornado_handler(sio))])


if __name__ == "__main__":
    args = parse_args()
    serve(make_app, args.port, args.gc, gc_stats=args.gc_stats)
