"""Three chitchat processes sharing one redis-server, clients spread over them on every
transport: one chat, as on one process. Then the failures: a process SIGKILLed
mid-conversation (its clients recover elsewhere with nothing lost or repeated, its
users leave within the bound) and Redis itself killed and restarted (sends refused
with ``unavailable`` meanwhile, connections kept, nothing acknowledged lost). And a
plain asyncio script's ``Publisher`` reaching every process.

Every client keeps a model of the room from the frames it gets (messages, edits,
reactions, removals, presence) and checks as they come that entries arrive in seq
order with no duplicate; at each checkpoint every model must equal the store's log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

import pytest
from browser.conftest import ServerProcess
from clients import TRANSPORTS
from conftest import eventually
from redisutil import RedisServer, free_port

import chitchat

TTL = 2.0  # the servers' presence ttl: a dead process's users leave within 1.25 * TTL
ROOM = "main"


class View:
    """One user's view of the room, fed by every frame its connections receive."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: dict[str, dict[str, Any]] = {}
        self.members: set[str] = set()
        self.epoch = ""
        self.last = 0
        self.errors: list[str] = []
        self.frames: list[dict[str, Any]] = []  # typing, read, pushes, resets

    def attach(self, client: Any) -> Any:
        original = client._got

        def got(text: str) -> None:
            self.take(json.loads(text))
            original(text)

        client._got = got
        return client

    def _entry(self, seq: int) -> None:
        if seq <= self.last:
            self.errors.append(f"{self.name}: entry {seq} after {self.last}")
        self.last = max(self.last, seq)

    def take(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        room = frame.get("room")
        if kind == "welcome" or (kind in ("ack", "joined") and "epoch" in frame):
            info = frame["room"] if kind == "welcome" else frame
            if info and info["room"] == ROOM:
                self.epoch = info["epoch"]
                self.members = set(info["members"])
        elif kind == "messages":
            for message in frame["list"]:
                if message["room"] == ROOM:
                    self._entry(message["seq"])
                    self.messages[message["id"]] = message
                else:
                    self.frames.append({"t": "push", **message})
        elif kind in ("edit", "remove", "reactions") and room == ROOM:
            self._entry(frame["seq"])
            if kind == "edit":
                self.messages[frame["msg"]["id"]] = frame["msg"]
            elif kind == "remove":
                self.messages.pop(frame["id"], None)
            elif frame["id"] in self.messages:
                message = self.messages[frame["id"]]
                message.pop("reactions", None)
                if frame["reactions"]:
                    message["reactions"] = frame["reactions"]
        elif kind == "presence" and room == ROOM:
            self.members |= set(frame["joined"])
            self.members -= set(frame["left"])
        elif kind in ("typing", "read", "reset"):
            self.frames.append(frame)

    def since(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.last}


class Cluster:
    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis
        self.procs: list[ServerProcess] = []
        self.urls: list[str] = []
        self.clients: list[Any] = []
        self.refs = itertools.count(1)
        self.store = chitchat.RedisStore(redis.url)

    def start(self, count: int) -> None:
        for _ in range(count):
            port = free_port()
            proc = ServerProcess([sys.executable, "tests/redis_chat_server.py", "--redis",
                                  self.redis.url, "--port", str(port), "--presence-ttl",
                                  str(TTL)])
            proc.start()
            self.procs.append(proc)
            self.urls.append(f"http://127.0.0.1:{port}")

    async def connect(self, view: View, node: int, kind: str,
                      since: dict[str, Any] | None = None) -> Any:
        client = view.attach(TRANSPORTS[kind](self.urls[node]))
        self.clients.append(client)
        await client.connect()
        name = view.name
        client.send({"t": "auth", "v": 1, "data": {"name": name, "token": "secret-" + name},
                     "since": since})
        welcome = await client.recv_type("welcome", timeout=10)
        assert welcome["user"] == name
        return client

    async def send(self, client: Any, text: str, cid: str) -> Any:
        return await client.request({"t": "send", "ref": next(self.refs), "cid": cid,
                                     "data": {"text": text}}, timeout=10)

    async def send_until_acked(self, client: Any, text: str, cid: str) -> Any:
        """What the browser client's outbox does: the same cid until it is acked."""
        for _ in range(50):
            answer = await self.send(client, text, cid)
            if answer["t"] == "ack":
                return answer["msg"]
            assert answer["meta"] == {"error": "unavailable"}, answer
            await asyncio.sleep(0.1)
        raise AssertionError(f"{text!r} was never accepted")

    async def log(self) -> tuple[int, dict[str, Any]]:
        position, messages = await self.store.recent(ROOM, 10_000)
        return position.last, {m.id: json.loads(m.raw) for m in messages}

    async def converged(self, *views: View) -> None:
        """Every view saw every entry and holds exactly the store's messages."""
        last, expected = await self.log()
        await eventually(lambda: all(v.last >= last for v in views), timeout=10)
        for view in views:
            assert view.errors == []
            assert view.messages == expected, view.name
            assert not [f for f in view.frames if f["t"] == "reset"], view.name

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for proc in self.procs:
            proc.kill()
        await self.store.close()


async def in_room(view: View, *names: str) -> None:
    await eventually(lambda: view.members == set(names), timeout=10)


@pytest.mark.gen_test(timeout=120)
async def test_three_processes_on_one_redis_are_one_chat_through_kills_and_restarts(
        own_redis: RedisServer) -> None:
    cluster = Cluster(own_redis)
    try:
        cluster.start(3)
        await cluster.store.start()
        ann, bob, cyd, dan, eve = (View(n) for n in ("ann", "bob", "cyd", "dan", "eve"))
        a = await cluster.connect(ann, 0, "native-websocket")
        b = await cluster.connect(bob, 1, "sockjs-websocket")
        c = await cluster.connect(cyd, 2, "sockjs-xhr-polling")
        d = await cluster.connect(dan, 2, "native-websocket")
        e = await cluster.connect(eve, 2, "sockjs-websocket")
        everyone = (ann, bob, cyd, dan, eve)
        # Presence: a user on any process is a member on all of them.
        for view in everyone:
            await in_room(view, "ann", "bob", "cyd", "dan", "eve")

        # A conversation from all five at once, through three processes.
        async def talk(client: Any, view: View, count: int, tag: str) -> list[Any]:
            # One request at a time per connection (the test client reads answers in
            # turn), all connections at once.
            return [await cluster.send(client, f"{view.name} {tag}{n}", f"{view.name}-{tag}{n}")
                    for n in range(count)]

        said = await asyncio.gather(*[talk(client, view, 4, "") for view, client in
                                      zip(everyone, (a, b, c, d, e), strict=True)])
        assert all(answer["t"] == "ack" for answers in said for answer in answers)
        first = said[0][0]["msg"]
        assert first["user"] == "ann"
        edit = await a.request({"t": "edit", "ref": next(cluster.refs), "room": ROOM,
                                "id": first["id"], "data": {"text": "ann 0, edited"}})
        react = await b.request({"t": "react", "ref": next(cluster.refs), "room": ROOM,
                                 "id": first["id"], "emoji": "👍"})
        gone = await e.request({"t": "remove", "ref": next(cluster.refs), "room": ROOM,
                                "id": said[4][0]["msg"]["id"]})
        assert [edit["t"], react["t"], gone["t"]] == ["ack"] * 3
        await cluster.converged(*everyone)
        # Typing and read positions cross processes too.
        d.send({"t": "typing", "room": ROOM})
        last = (await cluster.log())[0]
        read = await c.request({"t": "read", "ref": next(cluster.refs), "room": ROOM,
                                "seq": last})
        assert read["seq"] == last
        await eventually(lambda: {"t": "typing", "room": ROOM, "users": ["dan"]} in ann.frames)
        await eventually(lambda: any(f["t"] == "read" and f["reads"].get("cyd") == last
                                     for f in bob.frames), timeout=5)

        # Process 2 is SIGKILLed mid-conversation: cyd and dan come back on the others
        # with their positions and their unanswered sends; eve does not come back.
        bursts = asyncio.gather(talk(a, ann, 10, "burst"), talk(b, bob, 10, "burst"))
        pending = [asyncio.ensure_future(cluster.send(c, "cyd in flight", "cyd-f")),
                   asyncio.ensure_future(cluster.send(d, "dan in flight", "dan-f"))]
        cluster.procs[2].kill()
        killed = time.monotonic()

        async def eve_left() -> float:
            await eventually(lambda: "eve" not in ann.members, timeout=10)
            return time.monotonic() - killed

        leaving = asyncio.ensure_future(eve_left())
        await asyncio.gather(*pending, return_exceptions=True)  # acked or lost: resent
        c2 = await cluster.connect(cyd, 0, "sockjs-xhr-polling", since=cyd.since())
        d2 = await cluster.connect(dan, 1, "native-websocket", since=dan.since())
        await cluster.send_until_acked(c2, "cyd in flight", "cyd-f")
        await cluster.send_until_acked(d2, "dan in flight", "dan-f")
        assert all(answer["t"] == "ack" for group in await bursts for answer in group)
        survivors = (ann, bob, cyd, dan)
        await cluster.converged(*survivors)
        # eve's process is gone: she leaves, within the bound (1.25 * TTL, plus the
        # presence interval and the time a loaded machine takes to run the scripts).
        assert await leaving < 1.25 * TTL + 1.0
        for view in survivors:
            await in_room(view, "ann", "bob", "cyd", "dan")

        # Redis is killed and restarted (its append-only file synced on every write):
        # meanwhile sends are refused and connections stay open; nothing acked is lost.
        acked_before = (await cluster.log())[1]
        own_redis.kill()
        refused = await cluster.send(a, "while redis is down", "ann-down")
        assert refused["t"] == "nack" and refused["meta"] == {"error": "unavailable"}
        own_redis.start()
        for client, view in ((a, ann), (b, bob), (c2, cyd), (d2, dan)):
            await cluster.send_until_acked(client, f"{view.name} after", f"{view.name}-after")
        await cluster.send_until_acked(a, "while redis is down", "ann-down")
        after = (await cluster.log())[1]
        assert acked_before.keys() <= after.keys()
        await cluster.converged(*survivors)

        # A plain asyncio script with a Publisher: its message reaches every process.
        script = ("import asyncio, sys, chitchat\n"
                  "async def main():\n"
                  "    p = chitchat.Publisher(sys.argv[1])\n"
                  "    m = await p.publish('main', {'text': 'from a cron job'})\n"
                  "    await p.message('ann', {'text': 'your export is ready'})\n"
                  "    await p.close()\n"
                  "    print(m.raw)\n"
                  "asyncio.run(main())\n")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                    own_redis.url,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        published = json.loads(out)
        assert published["user"] is None and published["data"] == {"text": "from a cron job"}
        await cluster.converged(*survivors)
        await eventually(lambda: any(f["t"] == "push" and f["data"]["text"] ==
                                     "your export is ready" for f in ann.frames))

        # A newcomer anywhere gets the whole history, in its current state.
        fay = View("fay")
        await cluster.connect(fay, 1, "sockjs-websocket")
        await cluster.converged(fay)
    finally:
        await cluster.close()
