"""The room log over real sockets: gap-free recovery after a reconnect, resets when it
cannot be done, sends that are stored once, history paging, and in-order delivery even
when the broker delivers out of order or loses entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect
from test_rooms import join, send

import chitchat

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)


async def auth_since(connect: Connect, name: str, since: dict[str, Any] | None) -> tuple[Any, Any]:
    """Connect and authorize with ``since`` for the default room: (client, welcome)."""
    client = await connect()
    client.send({"t": "auth", "v": 1, "data": {"name": name, "token": "secret-" + name},
                 "since": since})
    welcome = await client.recv_type("welcome")
    return client, welcome


@pytest.mark.gen_test
@pytest.mark.chat(history=2)
async def test_a_reconnecting_client_gets_exactly_what_it_missed_not_just_history(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    seen = [(await send(ann, 1, "before"))["msg"]]
    assert (await bob.recv_type("messages"))["list"] == seen
    since = {"epoch": bob.welcome["room"]["epoch"], "seq": seen[-1]["seq"]}
    await bob.aclose()
    missed = [(await send(ann, i, f"missed {i}"))["msg"] for i in range(2, 12)]  # > history
    bob2, welcome = await auth_since(connect, "bob", since)
    assert welcome["room"]["seq"] == missed[-1]["seq"]
    frames = [await bob2.recv_type("messages")]
    while frames[-1]["list"][-1]["seq"] < missed[-1]["seq"]:
        frames.append(await bob2.recv_type("messages"))
    assert [m for f in frames for m in f["list"]] == missed  # in order, once each
    assert not [f for f in bob2.pending() if f["t"] == "reset"]
    live = (await send(ann, 99, "live"))["msg"]
    assert (await bob2.recv_type("messages"))["list"] == [live]


@pytest.mark.gen_test
async def test_recovery_in_a_joined_room_uses_join_since(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        await join(client, "dev")
    first = (await send(ann, 1, "one", room="dev"))["msg"]
    _, ack = await join(bob, "dev", ref=101)  # re-join: the position it was given
    since = {"epoch": ack["epoch"], "seq": ack["seq"]}
    assert since["seq"] == first["seq"]
    await bob.aclose()
    missed = [(await send(ann, i, f"m{i}", room="dev"))["msg"] for i in range(2, 6)]
    bob2 = await connect("bob")
    before, ack2 = await join(bob2, "dev", since=since)
    assert [m for f in before if f["t"] == "messages" for m in f["list"]] == missed
    assert ack2["seq"] == missed[-1]["seq"] and ack2["epoch"] == since["epoch"]


@pytest.mark.gen_test
async def test_a_position_of_another_epoch_gets_a_reset_then_the_recent_history(
    connect: Connect,
) -> None:
    ann = await connect("ann")
    sent = [(await send(ann, i, f"m{i}"))["msg"] for i in range(3)]
    bob, welcome = await auth_since(connect, "bob", {"epoch": "gone-server", "seq": 1})
    assert (await bob.recv()) == {"t": "reset", "room": "main", "epoch": welcome["room"]["epoch"]}
    assert (await bob.recv_type("messages"))["list"] == sent


@pytest.mark.gen_test
@pytest.mark.chat(store=chitchat.MemoryStore(capacity=5), history=3)
async def test_a_position_older_than_what_is_kept_gets_a_reset(connect: Connect) -> None:
    ann = await connect("ann")
    epoch = ann.welcome["room"]["epoch"]
    sent = [(await send(ann, i, f"m{i}"))["msg"] for i in range(10)]
    bob, _ = await auth_since(connect, "bob", {"epoch": epoch, "seq": 2})
    assert (await bob.recv())["t"] == "reset"
    assert (await bob.recv_type("messages"))["list"] == sent[-3:]


@pytest.mark.gen_test
@pytest.mark.chat(recovery_limit=3)
async def test_a_client_too_far_behind_gets_a_reset(connect: Connect) -> None:
    ann = await connect("ann")
    epoch = ann.welcome["room"]["epoch"]
    for i in range(6):
        await send(ann, i, f"m{i}")
    bob, _ = await auth_since(connect, "bob", {"epoch": epoch, "seq": 1})
    assert (await bob.recv())["t"] == "reset"


@pytest.mark.gen_test
async def test_a_send_repeated_with_its_cid_is_stored_once(connect: Connect,
                                                           chat: chitchat.Chat) -> None:
    ann1, bob = await connect("ann"), await connect("bob")
    frame = {"t": "send", "ref": 1, "cid": "c-7f3a", "data": {"text": "once"}}
    first = await ann1.request(frame)
    await ann1.aclose()  # say the ack was lost with the connection: the client re-sends
    ann2 = await connect("ann")
    again = await ann2.request(dict(frame, ref=1))
    assert again["msg"] == first["msg"]
    other = await ann2.request({"t": "send", "ref": 2, "cid": "c-other", "data": {"text": "2"}})
    got = [m for _ in range(2) for m in (await bob.recv_type("messages"))["list"]]
    assert got == [first["msg"], other["msg"]]  # delivered once
    assert [m.id for m in await chat.history("main")] == [first["msg"]["id"], other["msg"]["id"]]
    # Another user's same cid is another message.
    theirs = await bob.request(dict(frame, ref=3))
    assert theirs["msg"]["id"] != first["msg"]["id"]


@pytest.mark.gen_test
@pytest.mark.parametrize("cid", ["", "x" * 65, "has space", 7])
async def test_a_bad_cid_is_invalid(connect: Connect, cid: Any) -> None:
    ann = await connect("ann")
    error = await ann.request({"t": "send", "ref": 1, "cid": cid, "data": {}})
    assert (error["t"], error["code"]) == ("error", 4007)


@pytest.mark.gen_test
async def test_history_pages_back_by_seq(connect: Connect, chat: chitchat.Chat) -> None:
    ann = await connect("ann")
    sent = [(await send(ann, i, f"m{i}"))["msg"] for i in range(7)]
    page = await ann.request({"t": "history", "ref": 50, "room": "main", "limit": 3})
    assert page == {"t": "ack", "ref": 50, "room": "main", "list": sent[-3:]}
    older = await ann.request({"t": "history", "ref": 51, "room": "main",
                               "before": sent[-3]["seq"], "limit": 3})
    assert older["list"] == sent[1:4]
    assert [m.seq for m in await chat.history("main", before=3, limit=10)] == [1, 2]
    error = await ann.request({"t": "history", "ref": 52, "room": "main", "limit": 101})
    assert error["code"] == 4007
    error = await ann.request({"t": "history", "ref": 53, "room": "nowhere"})
    assert error["code"] == 4016


@pytest.mark.gen_test
@pytest.mark.chat(send_rate=None, frame_rate=None, history=100)
async def test_joins_during_a_burst_miss_nothing_and_repeat_nothing(connect: Connect) -> None:
    ann = await connect("ann")
    await join(ann, "dev")
    total = 60

    async def burst() -> None:
        for i in range(total):
            ann.send({"t": "send", "ref": 1000 + i, "room": "dev", "data": {"n": i}})
            if i % 10 == 9:
                await asyncio.sleep(0.01)

    sender = asyncio.get_running_loop().create_task(burst())
    joiners = []
    for name in ("bob", "cyd", "dee"):
        client = await connect(name)
        before, _ = await join(client, "dev")
        joiners.append((client, [m for f in before if f["t"] == "messages" for m in f["list"]]))
        await asyncio.sleep(0.01)
    await sender
    for client, history in joiners:
        got = await _until(client, "dev", total, history)
        assert [m["data"]["n"] for m in got] == list(range(total))
        assert [m["seq"] for m in got] == list(range(1, total + 1))


async def _until(client: Any, room: str, seq: int, got: list[Any] | None = None) -> list[Any]:
    """``got`` and then the room's messages as they arrive, until ``seq``."""
    got = list(got or [])
    while not got or got[-1]["seq"] < seq:
        frame = await client.recv_where(
            lambda f: f["t"] == "messages" and f["list"][0]["room"] == room, timeout=10)
        got += frame["list"]
    return got


class ShufflingBroker(chitchat.MemoryBroker):
    """A broker that delivers each room's entries two by two in swapped order and
    loses every seventh: what a node can see when several processes publish to one
    room, or when a broker drops its connection for a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, str] = {}
        self.count = 0

    async def publish(self, channel: str, payload: str) -> None:
        if not channel.startswith("r:") or payload.startswith("c|"):
            await super().publish(channel, payload)
            return
        self.count += 1
        if self.count % 7 == 0:
            return  # lost
        if channel in self.held:
            await super().publish(channel, payload)
            await super().publish(channel, self.held.pop(channel))
        else:
            self.held[channel] = payload


class LateBroker(chitchat.MemoryBroker):
    """Holds rooms' entries back while ``late`` is a list, until ``release``: what a
    node sees of a message another process stored and published a moment ago."""

    def __init__(self) -> None:
        super().__init__()
        self.late: list[tuple[str, str]] | None = None

    async def publish(self, channel: str, payload: str) -> None:
        if self.late is not None and channel.startswith("r:") and not payload.startswith("c|"):
            self.late.append((channel, payload))
        else:
            await super().publish(channel, payload)

    async def release(self) -> None:
        late, self.late = self.late or [], None
        for channel, payload in late:
            await super().publish(channel, payload)


@pytest.mark.gen_test
@pytest.mark.chat(broker=LateBroker())
async def test_a_joiner_whose_history_is_ahead_of_the_feed_gets_each_message_once(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    broker = chat.broker
    assert isinstance(broker, LateBroker)
    ann = await connect("ann")
    await join(ann, "dev")
    broker.late = []
    sent = [(await send(ann, i, f"m{i}", room="dev"))["msg"] for i in range(3)]
    bob = await connect("bob")
    before, _ = await join(bob, "dev")
    assert [m for f in before if f["t"] == "messages" for m in f["list"]] == sent
    await broker.release()
    assert await _until(ann, "dev", sent[-1]["seq"]) == sent  # ann gets them live
    last = (await send(ann, 9, "after", room="dev"))["msg"]
    assert (await bob.recv_where(lambda f: f["t"] == "messages"))["list"] == [last]


@pytest.mark.gen_test
@pytest.mark.chat(broker=ShufflingBroker())
async def test_entries_reach_clients_in_seq_order_whatever_the_broker_does(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    sent = [(await send(ann, i, f"m{i}"))["msg"] for i in range(20)]
    got = await _until(bob, "main", sent[-2]["seq"])  # the last one may still be held back
    assert got[: len(sent) - 1] == sent[:-1]

