"""A server on SQLiteStore, killed with SIGKILL right after its acks and started again on
the same file, over real sockets: every acknowledged entry is there, in order, for a
newcomer (history) and for a client that comes back with ``since`` (recovery, no reset).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.conftest import ServerProcess, free_port
from clients import TRANSPORTS

pytestmark = pytest.mark.parametrize("transport", ["native-websocket", "sockjs-websocket"])

#: Frames about people, not the log: left out of what the tests compare.
NOT_THE_LOG = {"presence", "typing", "read", "ping"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    """``start()``: a new server process on the test's database; the base URL."""
    started: list[ServerProcess] = []

    def start() -> tuple[ServerProcess, str]:
        port = free_port()
        server = ServerProcess([sys.executable, "tests/sqlite_server.py", "--port", str(port),
                                "--db", str(tmp_path / "chat.db")])
        server.start()
        started.append(server)
        return server, f"http://127.0.0.1:{port}"

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def connect(transport: str, io_loop: Any) -> Iterator[Any]:
    """``await connect(url, "ann", since=None)``: a client of ``transport``, authorized
    (its ``welcome`` read); every one is closed after the test."""
    clients: list[Any] = []

    async def _connect(url: str, name: str, since: Any = None) -> Any:
        client = TRANSPORTS[transport](url)
        clients.append(client)
        await client.connect()
        auth: dict[str, Any] = {"t": "auth", "v": 1,
                                "data": {"name": name, "token": "secret-" + name}}
        if since is not None:
            auth["since"] = since
        client.send(auth)
        client.welcome = await client.recv()
        assert client.welcome["t"] == "welcome", client.welcome
        return client

    yield _connect

    async def close_all() -> None:
        for client in clients:
            await client.aclose()

    io_loop.run_sync(close_all)


def children(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


async def ended(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie nobody reaps) within ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        await asyncio.sleep(0.05)
    return False


async def request(client: Any, frame: dict[str, Any]) -> Any:
    """Send ``frame`` and return its answer, which must be an ack."""
    client.send(frame)
    while (answer := await client.recv())["t"] not in ("ack", "nack"):
        pass
    assert answer == {**answer, "t": "ack", "ref": frame["ref"]}, answer
    return answer


async def send(client: Any, ref: int, text: str, cid: str | None = None) -> Any:
    frame = {"t": "send", "ref": ref, "data": {"text": text}}
    if cid is not None:
        frame["cid"] = cid
    return (await request(client, frame))["msg"]


async def until_pong(client: Any) -> list[Any]:
    """The log's frames that arrive before the answer to a ping sent now."""
    client.send({"t": "ping"})
    got = []
    while (frame := await client.recv())["t"] != "pong":
        if frame["t"] not in NOT_THE_LOG:
            got.append(frame)
    return got


async def messages_up_to(client: Any, seq: int) -> list[Any]:
    got: list[Any] = []
    while not got or got[-1]["seq"] < seq:
        got += (await client.recv_type("messages"))["list"]
    return got


@pytest.mark.gen_test(timeout=90)
async def test_a_killed_server_restarted_on_its_file_keeps_every_acknowledged_entry(
        connect: Any, servers: Any) -> None:
    server, url = servers()
    ann = await connect(url, "ann")
    bob = await connect(url, "bob")
    epoch = bob.welcome["room"]["epoch"]
    m = {n: await send(ann, n, f"message {n}", cid=f"c{n}") for n in range(1, 4)}
    assert await messages_up_to(bob, 3) == [m[1], m[2], m[3]]
    await bob.aclose()  # bob has seen up to seq 3
    m.update({n: await send(ann, n, f"message {n}", cid=f"c{n}") for n in range(4, 9)})
    m2 = (await request(ann, {"t": "edit", "ref": 9, "room": "main", "id": m[2]["id"],
                              "data": {"text": "message 2, edited"}}))["msg"]
    await request(ann, {"t": "remove", "ref": 10, "room": "main", "id": m[5]["id"]})
    helpers = children(server)  # the store's helper process
    assert len(helpers) == 1
    server.kill()  # SIGKILL, right after the last ack
    assert await ended(helpers[0])  # its input closed: it finished and left, no orphan

    _, url = servers()
    cyd = await connect(url, "cyd")
    assert (cyd.welcome["room"]["epoch"], cyd.welcome["room"]["seq"]) == (epoch, 10)
    assert await until_pong(cyd) == [
        {"t": "messages", "list": [m[1], m2, m[3], m[4], m[6], m[7], m[8]]}]

    back = await connect(url, "bob", since={"epoch": epoch, "seq": 3})
    assert (back.welcome["room"]["epoch"], back.welcome["room"]["seq"]) == (epoch, 10)
    assert await until_pong(back) == [  # exactly what bob missed; no reset
        {"t": "messages", "list": [m[4], m[6], m[7], m[8]]},
        {"t": "edit", "room": "main", "seq": 9, "msg": m2},
        {"t": "remove", "room": "main", "seq": 10, "id": m[5]["id"]},
    ]

    # ann's connection dropped with the server: her resent send is known by its cid.
    ann = await connect(url, "ann", since={"epoch": epoch, "seq": 10})
    assert await send(ann, 1, "message 8", cid="c8") == m[8]
    new = await send(ann, 2, "after the restart")
    assert new["seq"] == 11
    assert await messages_up_to(cyd, 11) == [new]
