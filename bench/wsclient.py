"""A minimal, fast WebSocket client on asyncio.Protocol, and one codec per server kind.

The load generator must never be the bottleneck, so a receiver does as little as
possible per frame: frames are cut out of the byte stream by hand (server frames are
unmasked), client frames are sent with an all-zero mask (legal, and it leaves the
payload unchanged), and benchmark messages are found in a payload with one regular
expression over the raw bytes, whatever the framing around them (SockJS arrays,
chitchat ``messages`` lists, Socket.IO events), escaped once or not at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time
from collections.abc import Callable
from typing import Any

#: One benchmark message inside any payload: run id, sequence number, sender clock (us).
MSG_RE = re.compile(rb'_r\\?":(\d+),\\?"_s\\?":(\d+),\\?"_c\\?":(\d+)')
PAD = "x" * 60  # a message's data is about 100 bytes of JSON


def now_us() -> int:
    """CLOCK_MONOTONIC in microseconds: one clock for every process on the machine."""
    return time.monotonic_ns() // 1000


def message_json(run: int, seq: int) -> str:
    return f'{{"_r":{run},"_s":{seq},"_c":{now_us()},"p":"{PAD}"}}'


def _frame_header(length: int) -> bytes:
    # FIN + text opcode; mask bit set with a zero key.
    if length < 126:
        return struct.pack("!BB", 0x81, 0x80 | length) + b"\0\0\0\0"
    if length < 65536:
        return struct.pack("!BBH", 0x81, 0x80 | 126, length) + b"\0\0\0\0"
    return struct.pack("!BBQ", 0x81, 0x80 | 127, length) + b"\0\0\0\0"


# -- codecs: how each server kind is spoken ---------------------------------------------


class Codec:
    """How to authorize, send one message, and answer keep-alives for one server kind."""

    name = ""

    def path(self, index: int) -> str:
        raise NotImplementedError

    def on_open(self, client: WSClient) -> None:
        """The WebSocket handshake is done (send auth here if the server waits for it)."""

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        raise NotImplementedError

    def keepalive(self, client: WSClient, payload: bytes) -> None:
        """Answer a server ping carried in ``payload``, if it is one."""

    def send(self, client: WSClient, run: int, seq: int) -> None:
        raise NotImplementedError

    def join(self, client: WSClient, ref: int, room: str) -> None:
        """Ask to join ``room`` (chitchat only: the baselines have no such rooms)."""
        raise NotImplementedError(f"{self.name} has no join frame")

    def frame(self, client: WSClient, frame: dict[str, Any]) -> None:
        """Send one chitchat frame (chitchat only)."""
        raise NotImplementedError(f"{self.name} speaks no chitchat frames")


def chitchat_auth(client: WSClient) -> str:
    """The auth frame; ``default: false`` when the client is to be in its joined rooms
    only (``client.default_room`` False)."""
    frame: dict[str, Any] = {"t": "auth", "v": 1, "data": {"name": client.user}}
    if not client.default_room:
        frame["default"] = False
    return json.dumps(frame)


class BareWebSocket(Codec):
    name = "tornado-ws"

    def path(self, index: int) -> str:
        return "/ws"

    def on_open(self, client: WSClient) -> None:
        client.send_text(json.dumps({"auth": client.user}).encode())

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        return payload.startswith(b'{"welcome"')

    def send(self, client: WSClient, run: int, seq: int) -> None:
        client.send_text(message_json(run, seq).encode())


class BareSockJS(Codec):
    name = "sockjs"
    prefix = "/sockjs"

    def path(self, index: int) -> str:
        return f"{self.prefix}/{index % 1000:03d}/{os.urandom(6).hex()}/websocket"

    def on_open(self, client: WSClient) -> None:
        pass  # wait for "o"

    def _auth_frame(self, client: WSClient) -> str:
        return json.dumps({"auth": client.user})

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        if payload == b"o":
            client.send_text(json.dumps([self._auth_frame(client)]).encode())
            return False
        return payload.startswith(b"a[") and b"welcome" in payload

    def send(self, client: WSClient, run: int, seq: int) -> None:
        client.send_text(json.dumps([message_json(run, seq)]).encode())


class Chitchat(BareSockJS):
    name = "chitchat-sockjs"
    prefix = "/chat"

    def _auth_frame(self, client: WSClient) -> str:
        return chitchat_auth(client)

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        if payload == b"o":
            client.send_text(json.dumps([self._auth_frame(client)]).encode())
            return False
        return b"welcome" in payload[:40]

    def keepalive(self, client: WSClient, payload: bytes) -> None:
        if b'\\"t\\":\\"ping\\"' in payload:
            client.send_text(b'["{\\"t\\":\\"pong\\"}"]')

    def send(self, client: WSClient, run: int, seq: int) -> None:
        frame = f'{{"t":"send","ref":{seq},"data":{message_json(run, seq)}}}'
        client.send_text(json.dumps([frame]).encode())

    def join(self, client: WSClient, ref: int, room: str) -> None:
        self.frame(client, {"t": "join", "ref": ref, "room": room})

    def frame(self, client: WSClient, frame: dict[str, Any]) -> None:
        client.send_text(json.dumps([json.dumps(frame)]).encode())


class ChitchatNative(Codec):
    name = "chitchat-ws"

    def path(self, index: int) -> str:
        return "/chat/ws"

    def on_open(self, client: WSClient) -> None:
        client.send_text(chitchat_auth(client).encode())

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        return payload.startswith(b'{"t":"welcome"')

    def keepalive(self, client: WSClient, payload: bytes) -> None:
        if payload == b'{"t":"ping"}':
            client.send_text(b'{"t":"pong"}')

    def send(self, client: WSClient, run: int, seq: int) -> None:
        room = f',"room":"{client.send_room}"' if client.send_room else ""
        client.send_text(
            f'{{"t":"send","ref":{seq}{room},"data":{message_json(run, seq)}}}'.encode())

    def join(self, client: WSClient, ref: int, room: str) -> None:
        self.frame(client, {"t": "join", "ref": ref, "room": room})

    def frame(self, client: WSClient, frame: dict[str, Any]) -> None:
        client.send_text(json.dumps(frame).encode())


class SocketIO(Codec):
    name = "socketio"

    def path(self, index: int) -> str:
        return "/socket.io/?EIO=4&transport=websocket"

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        if payload[:1] == b"0":  # Engine.IO open: connect to the default namespace
            client.send_text(b"40" + json.dumps({"name": client.user}).encode())
            return False
        return payload.startswith(b"40")

    def keepalive(self, client: WSClient, payload: bytes) -> None:
        if payload == b"2":
            client.send_text(b"3")

    def send(self, client: WSClient, run: int, seq: int) -> None:
        client.send_text(f'42["msg",{message_json(run, seq)}]'.encode())


#: An ``ack`` in a payload, escaped once (inside a SockJS array) or not at all.
ACK_RE = re.compile(rb'\\?"t\\?":\\?"ack\\?"')

CODECS: dict[str, Callable[[], Codec]] = {
    "sockjs": BareSockJS,
    "sockjs-batched": BareSockJS,
    "tornado-ws": BareWebSocket,
    "socketio": SocketIO,
    "chitchat-sockjs": Chitchat,
    "chitchat-ws": ChitchatNative,
}


# -- the client -------------------------------------------------------------------------


class WSClient(asyncio.Protocol):
    """One connection. ``on_payload(client, payload, now_us)`` gets every data frame
    once the client is ready: authorized, and (chitchat) its ``rooms`` joined, each
    ``join`` answered by an ``ack``."""

    def __init__(self, codec: Codec, host: str, port: int, index: int, user: str,
                 on_payload: Callable[[WSClient, bytes, int], None],
                 rooms: list[str] | None = None, default_room: bool = True) -> None:
        self.codec = codec
        self.host = host
        self.port = port
        self.path = codec.path(index)
        self.user = user
        self.on_payload = on_payload
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.authorized = False
        self.started = 0.0
        self.authorized_at = 0.0
        self.rooms = rooms or []
        self.default_room = default_room
        self.send_room = ""  # the room a chitchat-ws client's ``send`` frames name
        self.joins_left = 0
        self.ready_at = 0.0  # authorized, and every room joined
        # A room sender's window (bench/loadgen.py): its acks so far, a future to wake it.
        self.acked = 0
        self.refused = 0
        self.wake: asyncio.Future[None] | None = None
        self.deliver: Callable[[WSClient, bytes, int], None] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_reason = ""  # why it closed, when not by the load generator
        self._buf = b""
        self.state: Any = None  # the load generator's per-receiver bookkeeping

    # asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.close_reason = f"connection lost: {exc}"
        self.closed = True
        if not self._lost.done():
            self._lost.set_result(None)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before authorized: {exc}"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self._fail(f"handshake refused: {status!r}")
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.codec.on_open(self)
        now = now_us()
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            if b1 < 126:
                start = pos + 2
            elif b1 == 126:
                if size - pos < 4:
                    break
                b1 = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                b1 = struct.unpack_from("!Q", buf, pos + 2)[0]
                start = pos + 10
            end = start + b1
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[start:end]
            pos = end
            if opcode == 1 or opcode == 2:
                if self.joins_left:
                    self._joining(payload)
                elif self.authorized:
                    self.on_payload(self, payload, now)
                    self.codec.keepalive(self, payload)
                elif self.codec.is_authorized(self, payload):
                    self.authorized = True
                    self.authorized_at = time.monotonic()
                    if self.rooms:
                        self._join_rooms()
                    else:
                        self._ready()
                else:
                    self.codec.keepalive(self, payload)
            elif opcode == 9:
                self._send_frame(0x8A, payload)
            elif opcode == 8:
                self._fail(f"server closed: {payload[:80]!r}")
                return
        self._buf = buf[pos:] if pos < size else b""

    def _join_rooms(self) -> None:
        """Send every ``join`` at once (chitchat handles a connection's frames in order)."""
        self.joins_left = len(self.rooms)
        for ref, room in enumerate(self.rooms, 1):
            self.codec.join(self, ref, room)

    def _joining(self, payload: bytes) -> None:
        """A payload before every join is answered: history, presence, the acks."""
        self.codec.keepalive(self, payload)
        self.joins_left -= len(ACK_RE.findall(payload))
        if self.joins_left <= 0:
            self.joins_left = 0
            self._ready()

    def _ready(self) -> None:
        self.ready_at = time.monotonic()
        if not self.ready.done():
            self.ready.set_result(None)

    # sending

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_frame_header(len(payload)) + payload)

    def _send_frame(self, first: int, payload: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(bytes((first, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._send_frame(0x88, struct.pack("!H", 1000))
            self.transport.close()
        self.closed = True

    async def close_and_wait(self, timeout: float) -> None:
        """Close, and return once the socket is closed on this side."""
        if self.transport is None or self._lost.done():
            return
        self.close()
        await asyncio.wait_for(asyncio.shield(self._lost), timeout)

    def _fail(self, why: str) -> None:
        self.close_reason = self.close_reason or why
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def connect(codec: Codec, host: str, port: int, index: int, user: str,
                  on_payload: Callable[[WSClient, bytes, int], None],
                  timeout: float = 30.0, rooms: list[str] | None = None,
                  default_room: bool = True) -> WSClient:
    """Open, upgrade and authorize one client, then join its ``rooms``; its
    ``started``/``authorized_at``/``ready_at`` say how long that took (time.monotonic
    seconds)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    client = WSClient(codec, host, port, index, user, on_payload, rooms, default_room)
    client.started = started
    await asyncio.wait_for(loop.create_connection(lambda: client, host, port), timeout)
    await asyncio.wait_for(client.ready, timeout)
    return client
