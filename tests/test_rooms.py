"""Rooms, presence and typing over real sockets, on every transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect, eventually

import chitchat

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)

FAST = {"presence_interval": 0.05}


async def join(client: Any, room: str, ref: int = 100, **fields: Any) -> tuple[list[Any], Any]:
    """Join ``room``: (the frames that came before the answer, in order; the answer)."""
    client.send({"t": "join", "ref": ref, "room": room, **fields})
    before: list[Any] = []
    while True:
        frame = await client.recv()
        if frame.get("ref") == ref and frame["t"] in ("ack", "nack", "error"):
            return before, frame
        if frame["t"] != "ping":
            before.append(frame)


async def send(client: Any, ref: int, text: str, room: str | None = None) -> Any:
    frame: dict[str, Any] = {"t": "send", "ref": ref, "data": {"text": text}}
    if room is not None:
        frame["room"] = room
    return await client.request(frame)


async def next_message(client: Any, room: str) -> Any:
    frame = await client.recv_where(lambda f: f["t"] == "messages" and f["list"][0]["room"] == room)
    return frame["list"]


async def presence(client: Any, room: str, timeout: float = 5.0) -> Any:
    return await client.recv_where(lambda f: f["t"] == "presence" and f["room"] == room, timeout)


async def nothing_more(client: Any, match: Any, within: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await client.recv_where(match, timeout=within)


@contextlib.asynccontextmanager
async def answering_pings(*clients: Any) -> AsyncIterator[None]:
    """Keep ``clients`` alive (a pong every 50 ms) while the heartbeat is short."""
    async def pong() -> None:
        while True:
            for client in clients:
                client.send({"t": "pong"})
            await asyncio.sleep(0.05)

    task = asyncio.get_running_loop().create_task(pong())
    try:
        yield
    finally:
        task.cancel()


@pytest.mark.gen_test
async def test_a_message_reaches_exactly_the_rooms_connections(connect: Connect) -> None:
    ann1, ann2, bob, cyd = (await connect("ann"), await connect("ann"), await connect("bob"),
                            await connect("cyd"))
    for client in (ann1, ann2, bob):
        _, ack = await join(client, "dev")
        assert ack["t"] == "ack" and ack["room"] == "dev"
    sent = await send(ann1, 1, "in dev", room="dev")
    msg = sent["msg"]
    assert (msg["room"], msg["seq"], msg["user"]) == ("dev", 1, "ann")
    for client in (ann1, ann2, bob):  # every tab of ann's, and bob
        assert await next_message(client, "dev") == [msg]
    # cyd is not in dev: the next message she gets is her own, in main.
    mine = await send(cyd, 1, "in main")
    assert (await cyd.recv_type("messages"))["list"] == [mine["msg"]]
    assert mine["msg"]["room"] == "main"


@pytest.mark.gen_test
async def test_a_join_handler_can_refuse_and_a_refused_room_cannot_be_used(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    @chat.join
    async def only_staff(user: Any, room: str, data: Any, good: Any, bad: Any) -> None:
        if room == "staff" and user.id != "ann":
            bad({"reason": "staff only"})
        else:
            good({"topic": f"welcome to {room}", "data": data})

    ann, bob = await connect("ann"), await connect("bob")
    _, refused = await join(bob, "staff", data={"please": True})
    assert refused == {"t": "nack", "ref": 100, "meta": {"reason": "staff only"}}
    _, admitted = await join(ann, "staff", data={"k": 1})
    assert admitted["meta"] == {"topic": "welcome to staff", "data": {"k": 1}}
    error = await send(bob, 1, "sneaking in", room="staff")
    assert (error["t"], error["code"], error["fatal"]) == ("error", 4016, False)
    assert chat.members("staff") == ["ann"]


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["", "x" * 201, "tab\there", "nul\x00", 42])
async def test_a_bad_room_name_gets_a_coded_error(connect: Connect, name: Any) -> None:
    ann = await connect("ann")
    _, error = await join(ann, name)
    assert (error["t"], error["code"], error["fatal"]) == ("error", 4015, False)
    assert (await send(ann, 1, "still fine"))["t"] == "ack"


@pytest.mark.gen_test
async def test_a_message_handler_that_declares_room_is_told_the_room(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    seen: list[tuple[str, str]] = []

    @chat.message
    def per_room(user: Any, data: Any, good: Any, bad: Any, room: str) -> None:
        seen.append((user.id, room))
        good({"text": data["text"], "where": room})

    ann = await connect("ann")
    await join(ann, "dev")
    assert (await send(ann, 1, "a", room="dev"))["msg"]["data"] == {"text": "a", "where": "dev"}
    assert (await send(ann, 2, "b"))["msg"]["data"] == {"text": "b", "where": "main"}
    assert seen == [("ann", "dev"), ("ann", "main")]


@pytest.mark.gen_test
async def test_server_code_publishes_into_a_room(connect: Connect, chat: chitchat.Chat) -> None:
    ann = await connect("ann")
    await join(ann, "dev")
    message = await chat.publish("dev", {"text": "build passed"})
    assert (message.room, message.user, message.seq) == ("dev", None, 1)
    (delivered,) = await next_message(ann, "dev")
    assert delivered["data"] == {"text": "build passed"} and delivered["user"] is None
    by_bot = await chat.publish("dev", {"text": "hi"}, user="bot")
    assert (await next_message(ann, "dev"))[0]["user"] == "bot"
    assert [m.id for m in await chat.history("dev")] == [message.id, by_bot.id]
    with pytest.raises(ValueError):
        await chat.publish("", {"text": "no room"})


@pytest.mark.gen_test
async def test_a_joiner_gets_the_rooms_history_before_the_answer(connect: Connect) -> None:
    ann = await connect("ann")
    await join(ann, "dev")
    sent = [(await send(ann, i, f"m{i}", room="dev"))["msg"] for i in range(3)]
    bob = await connect("bob")
    before, ack = await join(bob, "dev")
    assert [f["t"] for f in before] == ["messages"] and before[0]["list"] == sent
    assert (ack["seq"], ack["members"], ack["unread"], ack["lastRead"]) == (3, ["ann", "bob"], 3, 0)
    assert isinstance(ack["epoch"], str) and ack["epoch"]


@pytest.mark.gen_test
@pytest.mark.chat(**FAST)
async def test_add_and_remove_move_every_connection_of_a_user(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    ann = await connect("ann")
    await join(ann, "dev")
    first = (await send(ann, 1, "before cyd", room="dev"))["msg"]
    cyd1, cyd2 = await connect("cyd"), await connect("cyd")
    await chat.add("cyd", "dev")
    for cyd in (cyd1, cyd2):
        joined = await cyd.recv_type("joined")
        assert joined["room"] == "dev" and joined["members"] == ["ann", "cyd"]
        assert await next_message(cyd, "dev") == [first]  # the history, after the info
    assert (await presence(ann, "dev"))["joined"] == ["cyd"]
    later = (await send(ann, 2, "hello cyd", room="dev"))["msg"]
    assert await next_message(cyd1, "dev") == [later]
    await chat.remove("cyd", "dev")
    for cyd in (cyd1, cyd2):
        assert await cyd.recv_type("removed") == {"t": "removed", "room": "dev"}
    assert (await presence(ann, "dev"))["left"] == ["cyd"]  # at once: no grace period
    await send(ann, 3, "cyd is gone", room="dev")
    await nothing_more(cyd1, lambda f: f["t"] == "messages")
    assert chat.members("dev") == ["ann"] and chat.rooms("cyd") == ["main"]


@pytest.mark.gen_test
@pytest.mark.chat(**FAST)
async def test_presence_tells_the_others_who_came_and_went_and_tabs_are_one_member(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    ann = await connect("ann")
    _, ack = await join(ann, "dev")
    assert ack["members"] == ["ann"]
    bob1 = await connect("bob")
    await join(bob1, "dev")
    assert await presence(ann, "dev") == {"t": "presence", "room": "dev", "joined": ["bob"],
                                          "left": []}
    bob2 = await connect("bob")  # a second tab: no news
    _, ack2 = await join(bob2, "dev")
    assert ack2["members"] == ["ann", "bob"]
    await nothing_more(ann, lambda f: f["t"] == "presence" and f["room"] == "dev")
    # Never told of itself, in any room.
    await nothing_more(bob1, lambda f: f["t"] == "presence" and "bob" in f["joined"])
    assert chat.members("dev") == ["ann", "bob"] and chat.rooms("bob") == ["dev", "main"]


@pytest.mark.gen_test
@pytest.mark.chat(presence_grace=0.5, **FAST)
async def test_a_reconnect_within_the_grace_period_makes_no_left_and_joined(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    ann = await connect("ann")
    await join(ann, "dev")
    bob = await connect("bob")
    await join(bob, "dev")
    assert (await presence(ann, "dev"))["joined"] == ["bob"]
    await bob.aclose()
    # xhr-polling: sockjs-tornado notices a client gone 5 s after its last poll.
    await eventually(lambda: "bob" not in chat.online(), timeout=20)
    bob = await connect("bob")  # back (a page reload)
    await join(bob, "dev")
    await nothing_more(ann, lambda f: f["t"] == "presence" and f["room"] == "dev", within=0.8)
    assert chat.members("dev") == ["ann", "bob"]
    bob.send({"t": "leave", "ref": 7, "room": "dev"})
    change = await presence(ann, "dev", timeout=5)
    assert change["left"] == ["bob"]  # after the grace period, for good


@pytest.mark.gen_test
@pytest.mark.chat(heartbeat=0.2, presence_grace=0.2, **FAST)
async def test_a_connection_that_vanishes_is_found_by_the_heartbeat_and_leaves(
    connect: Connect, transport: str,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    async with answering_pings(ann):
        await join(ann, "dev")
        await join(bob, "dev")  # bob never answers a ping: as good as a cut cable
        assert (await presence(ann, "dev"))["joined"] == ["bob"]
        change = await presence(ann, "dev", timeout=5)
        assert change["left"] == ["bob"]
        assert (await send(ann, 1, "alone", room="dev"))["t"] == "ack"


@pytest.mark.gen_test
@pytest.mark.chat(typing_ttl=0.4, **FAST)
async def test_typing_reaches_the_room_and_expires_by_itself(connect: Connect) -> None:
    ann, bob, cyd = await connect("ann"), await connect("bob"), await connect("cyd")
    for client in (ann, bob):
        await join(client, "dev")
    ann.send({"t": "typing", "room": "dev"})
    started = asyncio.get_running_loop().time()
    typing = await bob.recv_type("typing")
    assert typing == {"t": "typing", "room": "dev", "users": ["ann"]}
    assert (await bob.recv_type("typing"))["users"] == []  # expired
    assert asyncio.get_running_loop().time() - started >= 0.35
    await nothing_more(cyd, lambda f: f["t"] == "typing")  # not in dev


@pytest.mark.gen_test
@pytest.mark.chat(typing_ttl=5, **FAST)
async def test_sending_a_message_clears_the_senders_typing_at_once(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        await join(client, "dev")
    ann.send({"t": "typing", "room": "dev"})
    assert (await bob.recv_type("typing"))["users"] == ["ann"]
    await send(ann, 1, "done typing", room="dev")
    assert (await bob.recv_type("typing", timeout=1))["users"] == []  # not after 5 s


@pytest.mark.gen_test
@pytest.mark.chat(typing_ttl=0.5, typing_interval=1.5, **FAST)
async def test_typing_frames_closer_than_the_interval_are_ignored(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        await join(client, "dev")
    loop = asyncio.get_running_loop()
    started = loop.time()
    ann.send({"t": "typing", "room": "dev"})
    assert (await bob.recv_type("typing"))["users"] == ["ann"]

    async def keep_typing() -> None:  # faster than allowed, for 1.2 s
        while loop.time() - started < 1.2:
            ann.send({"t": "typing", "room": "dev"})
            await asyncio.sleep(0.05)

    typist = loop.create_task(keep_typing())
    # The refreshes are ignored, so the entry expires ttl after the first frame,
    # while ann is still sending.
    assert (await bob.recv_type("typing"))["users"] == []
    assert loop.time() - started < 1.2
    await typist


@pytest.mark.gen_test
@pytest.mark.chat(default_room=None)
async def test_without_a_default_room_nothing_is_joined_by_itself(connect: Connect) -> None:
    ann = await connect("ann")
    assert ann.welcome["room"] is None
    error = await send(ann, 1, "where does this go?")
    assert (error["t"], error["code"]) == ("error", 4015)
    await join(ann, "dev")
    assert (await send(ann, 2, "here", room="dev"))["msg"]["room"] == "dev"


@pytest.mark.gen_test
async def test_after_leaving_a_room_nothing_more_arrives_from_it(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        await join(client, "dev")
    left = await bob.request({"t": "leave", "ref": 5, "room": "dev"})
    assert left == {"t": "ack", "ref": 5, "room": "dev"}
    # One answer only: a leave was once answered with its ack and then an "internal"
    # nack (the handler was not awaitable), found by the fuzz campaign.
    await nothing_more(bob, lambda f: f.get("ref") == 5)
    await send(ann, 1, "anyone?", room="dev")
    await nothing_more(bob, lambda f: f["t"] == "messages")
    assert (await send(bob, 2, "gone", room="dev"))["code"] == 4016


@pytest.mark.gen_test
@pytest.mark.chat(presence_limit=2, **FAST)
async def test_a_room_past_the_presence_limit_carries_no_member_lists(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        _, ack = await join(client, "dev")
        assert ack["members"] is not None
    assert (await presence(ann, "dev"))["joined"] == ["bob"]
    cyd = await connect("cyd")
    _, ack = await join(cyd, "dev")
    assert ack["members"] is None  # three members: past the limit
    await nothing_more(ann, lambda f: f["t"] == "presence" and f["room"] == "dev")
