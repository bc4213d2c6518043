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
