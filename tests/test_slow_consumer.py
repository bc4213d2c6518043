"""A client that never reads is disconnected; nobody else loses a message."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

import pytest
from conftest import Connect


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def sleeper(port: int, path: str, first_frame: str) -> socket.socket:
    """A WebSocket client that authorizes and then never reads another byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += await loop.sock_recv(sock, 1)
    assert response.startswith(b"HTTP/1.1 101"), response
    await loop.sock_sendall(sock, masked_text_frame(first_frame))
    return sock


@pytest.mark.gen_test
# The rate limits would refuse this deliberate burst of 150 big sends: off for this test.
@pytest.mark.chat(max_backlog=64 * 1024, send_rate=None, frame_rate=None)
@pytest.mark.parametrize("path", ["/chat/ws", "/chat/000/slow/websocket"])
async def test_client_that_never_reads_is_dropped_and_others_get_everything(
    connect: Connect, chat: Any, http_port: int, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = json.dumps({"t": "auth", "v": 1, "data": {"name": "zzz", "token": "secret-zzz"}})
    if "websocket" in path:
        auth = json.dumps([auth])  # SockJS framing
    slow = await sleeper(http_port, path, auth)
    try:
        await _flood_past(slow, connect, chat)
    finally:
        slow.close()
    drops = [r for r in caplog.records if "stopped reading" in r.getMessage()]
    assert len(drops) == 1, [r.getMessage() for r in drops]  # logged once


async def _flood_past(slow: socket.socket, connect: Connect, chat: Any) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for _ in range(100):
        if "zzz" in chat.online():
            break
        await asyncio.sleep(0.01)
    assert "zzz" in chat.online()
    big = "x" * 60_000
    count = 150  # 9 MB: more than loopback's socket buffers and the backlog limit
    for ref in range(count):
        ann.send({"t": "send", "ref": ref, "data": {"text": "big", "pad": big, "n": ref}})
        if ref % 50 == 49:  # stay under max_pending
            for _ in range(50):
                await ann.recv_type("ack", timeout=20)
    got: list[int] = []
    while len(got) < count:
        got += [m["data"]["n"] for m in (await bob.recv_type("messages", timeout=20))["list"]]
    assert got == list(range(count))
    assert chat.online() == ["ann", "bob"]
