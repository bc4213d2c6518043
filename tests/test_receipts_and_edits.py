"""Read positions, unread counts, edits, deletes and reactions over real sockets: every
rule, with and without handlers, and recovered by a client that was away."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect
from test_recovery import auth_since
from test_rooms import join, send

import chitchat

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)


def read(ref: int, seq: int, room: str = "main") -> dict[str, Any]:
    return {"t": "read", "ref": ref, "room": room, "seq": seq}


@pytest.mark.gen_test
async def test_a_read_position_only_moves_forward_and_is_shared_by_tabs(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    ann, tab1, tab2 = await connect("ann"), await connect("bob"), await connect("bob")
    for i in range(5):
        await send(ann, i, f"m{i}")
    assert (await tab1.request(read(1, 3)))["seq"] == 3
    assert (await tab2.request(read(1, 1)))["seq"] == 3  # not back
    assert (await tab2.request(read(2, 99)))["seq"] == 5  # capped at the room's last entry
    assert await chat.read_position("bob", "main") == 5


@pytest.mark.gen_test
async def test_members_hear_of_reads_coalesced_to_one_frame_per_room_and_second(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for i in range(4):
        await send(ann, i, f"m{i}")
    for seq in (1, 2, 3, 4):
        assert (await bob.request(read(seq, seq)))["t"] == "ack"
    first = await ann.recv_type("read")
    assert first["room"] == "main" and first["reads"]["bob"] in (1, 2, 3, 4)
    if first["reads"]["bob"] < 4:  # the first one went out at once, the rest together
        second = await ann.recv_type("read", timeout=3)
        assert second["reads"] == {"bob": 4}
    with pytest.raises(TimeoutError):
        await ann.recv_type("read", timeout=1.2)


@pytest.mark.gen_test
async def test_unread_counts_leave_out_the_users_own_messages(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for client in (ann, bob):
        await join(client, "dev")
    for i in range(3):
        await send(ann, i, f"a{i}", room="dev")
    await send(bob, 9, "mine", room="dev")
    await send(ann, 10, "a main")
    assert await chat.unread("bob") == {"dev": 3, "main": 1}
    await bob.request(read(1, 2, room="dev"))
    assert (await chat.unread("bob"))["dev"] == 1
    late = await connect("bob")
    _, ack = await join(late, "dev")
    assert (ack["unread"], ack["lastRead"]) == (1, 2)
    assert ack["reads"] == {"bob": 2}


@pytest.mark.gen_test
async def test_only_the_author_may_edit_or_remove_without_handlers(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    msg = (await send(ann, 1, "typo"))["msg"]
    edit = {"t": "edit", "ref": 2, "room": "main", "id": msg["id"], "data": {"text": "fixed"}}
    assert (await bob.request(edit)) == {"t": "nack", "ref": 2, "meta": {"error": "forbidden"}}
    remove = {"t": "remove", "ref": 3, "room": "main", "id": msg["id"]}
    assert (await bob.request(remove))["meta"] == {"error": "forbidden"}
    edited = (await ann.request(edit))["msg"]
    assert (edited["id"], edited["seq"]) == (msg["id"], msg["seq"])
    assert edited["data"] == {"text": "fixed"}
    assert edited["edited"] >= msg["ts"]
    event = await bob.recv_type("edit")
    assert event["msg"] == edited and event["seq"] == msg["seq"] + 1
    assert (await ann.request(remove)) == {"t": "ack", "ref": 3, "room": "main", "id": msg["id"]}
    assert (await bob.recv_type("remove"))["id"] == msg["id"]
    gone = {"t": "edit", "ref": 4, "room": "main", "id": msg["id"], "data": {"text": "?"}}
    assert (await ann.request(gone))["meta"] == {"error": "not_found"}


@pytest.mark.gen_test
async def test_edit_and_remove_handlers_decide_instead(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    @chat.edit
    def moderators_edit(user: Any, message: Any, data: Any, good: Any, bad: Any) -> None:
        if user.id == "mod":
            good({**data, "by": "mod", "was": message.data["text"]})
        else:
            bad({"reason": "moderators only"})

    @chat.remove
    def moderators_remove(user: Any, message: Any, good: Any, bad: Any) -> None:
        good() if user.id == "mod" else bad({"reason": "moderators only"})

    ann, mod = await connect("ann"), await connect("mod")
    msg = (await send(ann, 1, "rude"))["msg"]
    edit = {"t": "edit", "ref": 2, "room": "main", "id": msg["id"], "data": {"text": "nice"}}
    assert (await ann.request(edit))["meta"] == {"reason": "moderators only"}
    assert (await mod.request(edit))["msg"]["data"] == {"text": "nice", "by": "mod", "was": "rude"}
    remove = {"t": "remove", "ref": 3, "room": "main", "id": msg["id"]}
    assert (await ann.request(remove))["meta"] == {"reason": "moderators only"}
    assert (await mod.request(remove))["t"] == "ack"
    assert await chat.history("main") == []


@pytest.mark.gen_test
async def test_reactions_toggle_and_reach_the_room(connect: Connect, chat: chitchat.Chat) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    msg = (await send(ann, 1, "ship it"))["msg"]

    def react(ref: int, emoji: str) -> dict[str, Any]:
        return {"t": "react", "ref": ref, "room": "main", "id": msg["id"], "emoji": emoji}

    assert (await bob.request(react(2, "👍")))["reactions"] == {"👍": ["bob"]}
    assert (await ann.request(react(3, "👍")))["reactions"] == {"👍": ["bob", "ann"]}
    assert (await bob.request(react(4, "🎉")))["reactions"] == {"👍": ["bob", "ann"], "🎉": ["bob"]}
    assert (await bob.request(react(5, "👍")))["reactions"] == {"👍": ["ann"], "🎉": ["bob"]}
    events = [await ann.recv_type("reactions") for _ in range(4)]
    assert events[-1] == {"t": "reactions", "room": "main", "seq": msg["seq"] + 4,
                          "id": msg["id"], "reactions": {"👍": ["ann"], "🎉": ["bob"]}}
    (now,) = await chat.history("main")
    assert now.reactions == {"👍": ["ann"], "🎉": ["bob"]}
    for ref, emoji in [(6, ""), (7, "two words"), (8, "x" * 33)]:
        assert (await bob.request(react(ref, emoji)))["code"] == 4007
    for i in range(18):
        await bob.request(react(100 + i, f":e{i}:"))
    too_many = await bob.request(react(200, ":one-more:"))
    assert too_many["meta"] == {"error": "too_many_reactions"}


@pytest.mark.gen_test
async def test_a_client_that_was_away_recovers_edits_removals_and_reactions(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    keep = (await send(ann, 1, "keep"))["msg"]
    drop = (await send(ann, 2, "drop"))["msg"]
    assert (await bob.recv_type("messages"))["list"] == [keep]
    await bob.recv_type("messages")
    since = {"epoch": bob.welcome["room"]["epoch"], "seq": drop["seq"]}
    await bob.aclose()
    await ann.request({"t": "edit", "ref": 3, "room": "main", "id": keep["id"],
                       "data": {"text": "kept, edited"}})
    await ann.request({"t": "remove", "ref": 4, "room": "main", "id": drop["id"]})
    await ann.request({"t": "react", "ref": 5, "room": "main", "id": keep["id"], "emoji": "👀"})
    back, _ = await auth_since(connect, "bob", since)
    edit = await back.recv_type("edit")
    assert edit["msg"]["data"] == {"text": "kept, edited"}
    assert (await back.recv_type("remove"))["id"] == drop["id"]
    assert (await back.recv_type("reactions"))["reactions"] == {"👀": ["ann"]}
    fresh = await connect("cyd")  # history is the current state
    (shown,) = (await fresh.recv_type("messages"))["list"]
    assert shown["data"] == {"text": "kept, edited"} and shown["reactions"] == {"👀": ["ann"]}
