"""The reconnect torture test: nothing acknowledged is lost, nothing is shown twice.

50 clients in 5 rooms (and the default room) over native WebSocket, SockJS websocket and
xhr-polling, recovering the way the browser client does (tests/recovering_client.py).
While they send, the server drops connections at random moments and is killed with
SIGKILL and restarted on the same SQLite file, twice. At the end every client's view of
every room it is in equals the store's log (same entries, same order, no duplicates, no
reset) and every send that was answered is in the log exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from browser.conftest import ServerProcess, free_port
from recovering_client import RecoveringClient
from tornado.httpclient import AsyncHTTPClient

ROOMS = [f"r{i}" for i in range(5)]
CLIENTS = 50
SENDS = 6  # per client


def kind_of(i: int) -> str:
    return ["native-websocket", "sockjs-websocket", "native-websocket", "sockjs-websocket",
            "sockjs-xhr-polling"][i % 5]


@pytest.mark.gen_test(timeout=150)
async def test_every_view_equals_the_log_through_drops_and_two_sigkills(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess([sys.executable, "tests/sqlite_server.py", "--port", str(port),
                            "--db", str(tmp_path / "chat.db"), "--chaos"])
    server.start()
    rng = random.Random(7)
    clients = [RecoveringClient(base, f"u{i}", rng.sample(ROOMS, 2), kind_of(i))
               for i in range(CLIENTS)]
    http = AsyncHTTPClient(force_instance=True)
    try:
        for client in clients:
            client.start()
        await asyncio.wait_for(asyncio.gather(*(c.online.wait() for c in clients)), 30)

        async def sender(client: RecoveringClient) -> list[dict[str, Any]]:
            sent = []
            for n in range(SENDS):
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                room = rng.choice([*client.rooms, "main"])
                sent.append(await client.send(room, {"text": f"{client.name}#{n}"}))
            return sent

        async def chaos() -> None:
            for round_ in range(8):
                await asyncio.sleep(0.3)
                if round_ in (2, 5):
                    server.kill()  # SIGKILL: whatever was not acknowledged may be gone
                    server.start()
                else:
                    with contextlib.suppress(OSError):  # just restarted
                        await http.fetch(base + "/drop?n=8", method="POST", body=b"")

        senders = asyncio.gather(*(sender(c) for c in clients))
        await chaos()
        sent = [m for per_client in await asyncio.wait_for(senders, 90) for m in per_client]

        logs = {}
        for room in [*ROOMS, "main"]:
            answer = await http.fetch(f"{base}/log?room={room}")
            logs[room] = json.loads(answer.body)
        # Every answered send is in the log, exactly once: re-sends were not doubled.
        logged = [entry["id"] for log in logs.values() for entry in log]
        assert sorted(logged) == sorted(m["id"] for m in sent)
        assert len(logged) == CLIENTS * SENDS

        async def caught_up(client: RecoveringClient) -> None:
            while any(len(client.seen.get(room, [])) < len(logs[room])
                      for room in [*client.rooms, "main"]):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(asyncio.gather(*(caught_up(c) for c in clients)), 30)
        for client in clients:
            assert client.duplicates == [] and client.resets == [], client.name
            for room in [*client.rooms, "main"]:
                view = [(m["id"], m["seq"]) for m in client.seen.get(room, [])]
                assert view == [(e["id"], e["seq"]) for e in logs[room]], (client.name, room)
        assert all(c.reconnects >= 1 for c in clients)  # the chaos reached every client
    finally:
        for client in clients:
            await client.stop()
        http.close()
        server.kill()
