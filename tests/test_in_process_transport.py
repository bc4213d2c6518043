"""chitchat.testing: users test their own handlers without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Connect, make_chat

from chitchat.testing import Rejected, TestClient, Unauthorized


def creds(name: str) -> dict[str, str]:
    return {"name": name, "token": "secret-" + name}


@pytest.mark.gen_test
async def test_handlers_can_be_tested_without_sockets() -> None:
    chat = make_chat()
    ann = await TestClient.connect(chat, creds("ann"))
    bob = await TestClient.connect(chat, creds("bob"))
    assert (ann.user, bob.meta) == ("ann", {"online": ["ann"]})
    message = await ann.send({"text": "upper:hi"})
    assert message["data"] == {"text": "HI"} and message["user"] == "ann"
    assert await bob.next_messages() == [message]
    with pytest.raises(Rejected) as rejected:
        await bob.send({"text": "y" * 501})
    assert rejected.value.meta == {"reason": "too long"}
    with pytest.raises(Unauthorized) as refused:
        await TestClient.connect(chat, {"name": "eve", "token": "guess"})
    assert refused.value.meta == {"invalid": True}
    await chat.message("bob", {"text": "psst"})
    assert (await bob.next_messages(2))[-1]["data"] == {"text": "psst"}
    await ann.close()
    assert chat.online() == ["bob"]
    await bob.close()
    assert chat.online() == []
    await chat.stop()


@pytest.mark.gen_test
async def test_in_process_users_share_the_chat_with_socket_users(
    connect: Connect, chat: Any
) -> None:
    sockjs_user = await connect("ann", kind="sockjs-websocket")
    native_user = await connect("bob", kind="native-websocket")
    local = await TestClient.connect(chat, creds("cyd"))
    message = await local.send({"text": "hello sockets"})
    for client in (sockjs_user, native_user):
        assert (await client.recv_type("messages"))["list"] == [message]
    native_user.send({"t": "send", "ref": 1, "data": {"text": "hello back"}})
    ack = await native_user.recv_type("ack")
    assert (await local.next_messages(2))[-1] == ack["msg"]
    assert (await sockjs_user.recv_type("messages"))["list"] == [ack["msg"]]
    await local.close()


@pytest.mark.gen_test
async def test_join_and_edit_handlers_can_be_tested_without_sockets() -> None:
    chat = make_chat(presence_interval=0.05)

    @chat.join
    def members_only(user: Any, room: str, data: Any, good: Any, bad: Any) -> None:
        good({"topic": room}) if data == {"invite": "ok"} else bad({"reason": "invite only"})

    ann = await TestClient.connect(chat, creds("ann"))
    bob = await TestClient.connect(chat, creds("bob"))
    with pytest.raises(Rejected) as refused:
        await bob.join("club")
    assert refused.value.meta == {"reason": "invite only"}
    info = await ann.join("club", {"invite": "ok"})
    assert (info["meta"], info["members"]) == ({"topic": "club"}, ["ann"])
    message = await ann.send({"text": "hi"}, room="club")
    assert message["room"] == "club"
    edited = await ann.edit("club", message["id"], {"text": "hello"})
    assert edited["data"] == {"text": "hello"} and "edited" in edited
    with pytest.raises(Rejected) as forbidden:
        await bob.edit("club", message["id"], {"text": "hijack"})
    assert forbidden.value.meta == {"code": 4016, "reason": "this connection is not in room 'club'"}
    assert await ann.react("club", message["id"], "👍") == {"👍": ["ann"]}
    assert [m["data"] for m in await ann.history("club")] == [{"text": "hello"}]
    await ann.close()
    await bob.close()
    await chat.stop()
