"""Sends pipelined on one connection: their appends overlap (one group commit for a
burst) while everything a user sees stays in frame order: acks, seqs, deliveries, and
the answer to any other frame after the sends before it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clients
import pytest
from conftest import Connect, eventually, make_chat

import chitchat
from chitchat.session import SENDS_AHEAD


class CountingStore(chitchat.SQLiteStore):
    """SQLiteStore, counting the appends awaiting their answer."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.appending = 0
        self.most = 0

    async def append(self, *args: Any, **kwargs: Any) -> Any:
        self.appending += 1
        self.most = max(self.most, self.appending)
        try:
            return await super().append(*args, **kwargs)
        finally:
            self.appending -= 1


@pytest.fixture(params=["memory", "sqlite"])
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[chitchat.Chat]:
    options: dict[str, Any] = {"send_rate": None, "frame_rate": None, "history": 100}
    if request.param == "sqlite":
        options["store"] = chitchat.SQLiteStore(str(tmp_path / "chat.db"))
    elif request.param == "counting":
        options["store"] = CountingStore(str(tmp_path / "chat.db"))
    yield make_chat(**options)


def send_at_once(client: Any, frames: list[Any]) -> None:
    """``frames`` in one SockJS frame (the fixture's transport): the server takes them up
    together, as it does a burst that arrives in one read."""
    assert isinstance(client, clients.SockJSWebSocketClient)
    client._write(json.dumps([json.dumps(frame) for frame in frames]))


async def acks(client: Any, count: int) -> list[Any]:
    return [await client.recv_where(lambda f: f["t"] in ("ack", "nack", "error"))
            for _ in range(count)]


@pytest.mark.gen_test
async def test_a_burst_is_answered_stored_and_delivered_in_frame_order(
        connect: Connect, chat: chitchat.Chat) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    total = 40
    send_at_once(ann, [{"t": "send", "ref": ref, "data": {"text": f"m{ref}"}}
                       for ref in range(total)]
                 + [{"t": "history", "ref": 999, "room": "main", "limit": 100}])
    answers = await acks(ann, total + 1)
    assert [a["ref"] for a in answers] == [*range(total), 999]
    sent = [a["msg"] for a in answers[:total]]
    assert [m["data"]["text"] for m in sent] == [f"m{n}" for n in range(total)]
    assert [m["seq"] for m in sent] == list(range(1, total + 1))
    assert answers[-1]["list"] == sent  # the history frame waited for every send before it
    seen: list[Any] = []
    while len(seen) < total:
        seen += (await bob.recv_type("messages"))["list"]
    assert seen == sent


@pytest.mark.gen_test
async def test_refusals_and_a_repeated_cid_in_a_burst_keep_the_order(
        connect: Connect, chat: chitchat.Chat) -> None:
    ann = await connect("ann")
    frames = [{"text": "one"}, {"text": "x" * 501}, {"text": "upper:three"},
              {"text": "four", "cid": "c4"}, {"text": "four again", "cid": "c4"},
              {"text": "five"}]
    burst = []
    for ref, data in enumerate(frames):
        cid = data.pop("cid", None)
        burst.append({"t": "send", "ref": ref, "data": data, **({"cid": cid} if cid else {})})
    send_at_once(ann, burst)
    answers = await acks(ann, len(frames))
    assert [(a["ref"], a["t"]) for a in answers] == [
        (0, "ack"), (1, "nack"), (2, "ack"), (3, "ack"), (4, "ack"), (5, "ack")]
    assert answers[1]["meta"] == {"reason": "too long"}
    assert answers[4]["msg"] == answers[3]["msg"]  # stored once, answered twice
    stored = [m.data["text"] for m in await chat.history("main", limit=10)]
    assert stored == ["one", "THREE", "four", "five"]
    assert [a["msg"]["seq"] for a in answers if a["t"] == "ack"] == [1, 2, 3, 3, 4]


@pytest.mark.gen_test
@pytest.mark.parametrize("chat", ["counting"], indirect=True)
async def test_a_connection_does_not_wait_for_each_append_before_the_next(
        connect: Connect, chat: chitchat.Chat, tmp_path: Path) -> None:
    store = chat.store
    assert isinstance(store, CountingStore)
    ann = await connect("ann")
    # Another program holds the database's write lock: no append can finish.
    other = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    total = SENDS_AHEAD + 4
    send_at_once(ann, [{"t": "send", "ref": ref, "data": {"text": f"m{ref}"}}
                       for ref in range(total)])
    await eventually(lambda: store.appending == SENDS_AHEAD)
    other.execute("COMMIT")
    other.close()
    answers = await acks(ann, total)
    assert [(a["ref"], a["msg"]["seq"]) for a in answers] == [
        (ref, ref + 1) for ref in range(total)]
    assert store.most == SENDS_AHEAD  # and never more than that at once


@pytest.mark.gen_test
async def test_closing_mid_burst_stores_each_send_at_most_once_in_order(
        connect: Connect, chat: chitchat.Chat) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    send_at_once(ann, [{"t": "send", "ref": ref, "data": {"text": f"m{ref}"}}
                       for ref in range(30)])
    await ann.recv_type("ack")
    await ann.aclose()
    # Stored after every append ann's session had begun (appends keep their order).
    bob.send({"t": "send", "ref": 1, "data": {"text": "still here"}})
    assert (await bob.recv_type("ack"))["msg"]["data"] == {"text": "still here"}
    stored = [m.data["text"] for m in await chat.history("main", limit=100)]
    from_ann = [text for text in stored if text != "still here"]
    assert from_ann and from_ann == [f"m{n}" for n in range(len(from_ann))]

