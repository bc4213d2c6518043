"""The server contract, over real sockets, on every server transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect

import chitchat

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)


async def send(client: Any, ref: int, data: dict[str, Any]) -> Any:
    client.send({"t": "send", "ref": ref, "data": data})
    return await client.recv_type("ack")


@pytest.mark.gen_test
async def test_authorized_user_is_welcomed_with_identifier_and_meta(connect: Connect) -> None:
    ann = await connect("ann")
    assert ann.welcome["user"] == "ann"
    assert ann.welcome["meta"] == {"online": []}
    bob = await connect("bob")
    assert bob.welcome["meta"] == {"online": ["ann"]}


@pytest.mark.gen_test
async def test_bad_token_is_refused_with_meta_and_closed(connect: Connect) -> None:
    client = await connect()
    answer = await client.auth({"name": "ann", "token": "wrong"})
    assert answer == {"t": "unauthorized", "meta": {"invalid": True}}
    await client.closed(timeout=10)


@pytest.mark.gen_test
async def test_message_reaches_everyone_and_the_sender_gets_the_same_object(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ack = await send(ann, 1, {"text": "hi bob"})
    assert ack["ref"] == 1
    msg = ack["msg"]
    assert msg["user"] == "ann" and msg["data"] == {"text": "hi bob"}
    assert isinstance(msg["id"], str) and isinstance(msg["ts"], int)
    for client in (ann, bob):
        frame = await client.recv_type("messages")
        assert frame["list"] == [msg]


@pytest.mark.gen_test
async def test_transformed_message_arrives_transformed(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ack = await send(ann, 1, {"text": "upper:shout"})
    assert ack["msg"]["data"] == {"text": "SHOUT"}
    assert (await bob.recv_type("messages"))["list"][0]["data"] == {"text": "SHOUT"}


@pytest.mark.gen_test
async def test_rejected_message_reaches_no_one_and_is_not_kept(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ann.send({"t": "send", "ref": 7, "data": {"text": "x" * 501}})
    assert await ann.recv_type("nack") == {"t": "nack", "ref": 7, "meta": {"reason": "too long"}}
    ok = await send(ann, 8, {"text": "fine"})
    # The next thing either client gets is the accepted message, never the rejected one.
    for client in (ann, bob):
        assert (await client.recv_type("messages"))["list"] == [ok["msg"]]
    late = await connect("cyd")
    assert (await late.recv_type("messages"))["list"] == [ok["msg"]]


@pytest.mark.gen_test
async def test_push_reaches_every_connection_of_its_user_and_no_one_else(
    connect: Connect, chat: Any
) -> None:
    ann1, ann2, bob = await connect("ann"), await connect("ann"), await connect("bob")
    await chat.message("ann", {"text": "you have mail"})
    for client in (ann1, ann2):
        (pushed,) = (await client.recv_type("messages"))["list"]
        assert pushed["user"] is None and pushed["data"] == {"text": "you have mail"}
    # bob's next frame is his own message, not the push.
    ack = await send(bob, 1, {"text": "me"})
    assert (await bob.recv_type("messages"))["list"] == [ack["msg"]]
    assert chat.online() == ["ann", "bob"]


@pytest.mark.gen_test
async def test_newcomer_gets_recent_history_without_pushes(connect: Connect, chat: Any) -> None:
    ann = await connect("ann")
    sent = [(await send(ann, i, {"text": f"m{i}"}))["msg"] for i in range(3)]
    await chat.message("ann", {"text": "push"})
    late = await connect("bob")
    assert (await late.recv_type("messages"))["list"] == sent


@pytest.mark.gen_test
@pytest.mark.chat(history=2)
async def test_history_length_is_configurable(connect: Connect) -> None:
    ann = await connect("ann")
    sent = [(await send(ann, i, {"text": f"m{i}"}))["msg"] for i in range(4)]
    late = await connect("bob")
    assert (await late.recv_type("messages"))["list"] == sent[-2:]


@pytest.mark.gen_test
async def test_messages_are_handled_and_delivered_in_the_order_sent(
    connect: Connect, chat: Any
) -> None:
    @chat.message
    async def slow_then_fast(user: Any, data: Any, good: Any, bad: Any) -> None:
        await asyncio.sleep(data["delay"])
        good()

    ann, bob = await connect("ann"), await connect("bob")
    delays = [0.05, 0.0, 0.03, 0.0, 0.01]
    for ref, delay in enumerate(delays):
        ann.send({"t": "send", "ref": ref, "data": {"delay": delay}})
    acks = [(await ann.recv_type("ack"))["ref"] for _ in delays]
    assert acks == list(range(len(delays)))
    seen: list[float] = []
    while len(seen) < len(delays):
        seen += [m["data"]["delay"] for m in (await bob.recv_type("messages"))["list"]]
    assert seen == delays


@pytest.mark.gen_test
async def test_handler_that_raises_rejects_as_internal_and_logs_once(
    connect: Connect, chat: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @chat.message
    async def broken(user: Any, data: Any, good: Any, bad: Any) -> None:
        raise RuntimeError("boom")

    ann = await connect("ann")
    ann.send({"t": "send", "ref": 1, "data": {}})
    assert await ann.recv_type("nack") == {"t": "nack", "ref": 1, "meta": {"error": "internal"}}
    tracebacks = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(tracebacks) == 1


@pytest.mark.gen_test
async def test_sync_handler_that_raises_rejects_as_internal(connect: Connect, chat: Any) -> None:
    @chat.message
    def broken(user: Any, data: Any, good: Any, bad: Any) -> None:
        raise KeyError("text")

    ann = await connect("ann")
    ann.send({"t": "send", "ref": 1, "data": {}})
    assert (await ann.recv_type("nack"))["meta"] == {"error": "internal"}


@pytest.mark.gen_test
async def test_answering_twice_raises_a_clear_error(connect: Connect, chat: Any) -> None:
    errors: list[Exception] = []

    @chat.message
    def twice(user: Any, data: Any, good: Any, bad: Any) -> None:
        good()
        try:
            bad({"no": 1})
        except Exception as exc:
            errors.append(exc)

    ann = await connect("ann")
    await send(ann, 1, {"text": "once"})
    assert len(errors) == 1 and "exactly once" in str(errors[0])
    assert isinstance(errors[0], chitchat.AlreadyAnsweredError)


@pytest.mark.gen_test
@pytest.mark.chat(handler_timeout=0.2)
async def test_handler_that_never_answers_times_out(
    connect: Connect, chat: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @chat.message
    def silent(user: Any, data: Any, good: Any, bad: Any) -> None:
        pass

    ann = await connect("ann")
    ann.send({"t": "send", "ref": 1, "data": {}})
    assert (await ann.recv_type("nack"))["meta"] == {"error": "timeout"}
    assert any("neither good() nor bad()" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test
async def test_async_authorize_handler_works(connect: Connect, chat: Any) -> None:
    @chat.authorize
    async def slow_auth(data: Any, good: Any, bad: Any) -> None:
        await asyncio.sleep(0.01)
        good(data["name"], {"via": "async"})

    client = await connect()
    answer = await client.auth({"name": "zed"})
    assert answer["t"] == "welcome" and answer["meta"] == {"via": "async"}


@pytest.mark.gen_test
async def test_frames_before_auth_get_a_coded_error(connect: Connect) -> None:
    client = await connect()
    client.send({"t": "send", "ref": 3, "data": {"text": "sneaky"}})
    error = await client.recv_type("error")
    assert error["code"] == 4003 and error["ref"] == 3 and error["fatal"] is False
    welcome = await client.auth({"name": "ann", "token": "secret-ann"})
    assert welcome["t"] == "welcome"


@pytest.mark.gen_test
@pytest.mark.chat(auth_timeout=0.3)
async def test_client_that_never_authorizes_is_disconnected_with_a_reason(
    connect: Connect,
) -> None:
    client = await connect()
    error = await client.recv_type("error")
    assert error["code"] == 4005 and error["fatal"] is True
    await client.closed(timeout=10)


@pytest.mark.gen_test
async def test_oversized_send_is_answered_with_its_ref(connect: Connect) -> None:
    ann = await connect("ann")
    ann.send('{"t":"send","ref":41,"data":{"text":"' + "x" * 70000 + '"}}')
    error = await ann.recv_type("error")
    assert (error["code"], error["ref"], error["fatal"]) == (4002, 41, False)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", 4000),
        ("[1, 2]", 4000),
        ('{"t": "dance"}', 4001),
        ('{"t": "send", "ref": "one", "data": {}}', 4007),
        ('{"t": "send", "ref": 1, "data": "text"}', 4007),
        ('{"t": "auth", "v": 1, "data": {}}', 4008),
        ('{"t":"send","ref":1,"data":{"text":"' + "x" * 70000 + '"}}', 4002),
    ],
)
async def test_bad_frames_get_a_coded_error_and_the_connection_goes_on(
    connect: Connect, text: str, code: int
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ann.send(text)
    error = await ann.recv_type("error")
    assert error["code"] == code and error["fatal"] is False
    ack = await send(ann, 2, {"text": "still here"})
    assert (await bob.recv_type("messages"))["list"] == [ack["msg"]]


@pytest.mark.gen_test
async def test_wrong_protocol_version_is_refused(connect: Connect) -> None:
    client = await connect()
    client.send({"t": "auth", "v": 99, "data": {"name": "ann", "token": "secret-ann"}})
    error = await client.recv_type("error")
    assert error["code"] == 4006 and error["fatal"] is True


@pytest.mark.gen_test
@pytest.mark.chat(max_pending=3)
async def test_flood_is_refused_per_frame_without_losing_accepted_ones(
    connect: Connect, chat: Any
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    @chat.message
    async def gated(user: Any, data: Any, good: Any, bad: Any) -> None:
        started.set()
        await release.wait()
        good()

    ann = await connect("ann")
    ann.send({"t": "send", "ref": 0, "data": {"n": 0}})
    await asyncio.wait_for(started.wait(), 5)  # send 0 is being handled: 3 more may wait
    for ref in range(1, 10):
        ann.send({"t": "send", "ref": ref, "data": {"n": ref}})
    refused = [(await ann.recv_type("error")) for _ in range(6)]
    assert {e["code"] for e in refused} == {4010}
    assert sorted(e["ref"] for e in refused) == list(range(4, 10))
    release.set()
    assert [(await ann.recv_type("ack"))["ref"] for _ in range(4)] == [0, 1, 2, 3]


@pytest.mark.gen_test
@pytest.mark.chat(heartbeat=0.3)
async def test_server_pings_and_closes_a_silent_client(connect: Connect) -> None:
    ann = await connect("ann")
    assert ann.welcome["hb"] == 300
    assert await ann.recv() == {"t": "ping"}
    ann.send({"t": "pong"})
    assert await ann.recv() == {"t": "ping"}
    # Stop answering: within two intervals the server gives up on us.
    while (frame := await ann.recv()) != {"t": "error", "code": 4009,
                                           "reason": "nothing heard from the client",
                                           "fatal": True}:
        assert frame == {"t": "ping"}
    await ann.closed(timeout=10)


@pytest.mark.gen_test
async def test_ping_is_answered(connect: Connect) -> None:
    ann = await connect("ann")
    ann.send({"t": "ping"})
    assert await ann.recv_type("pong") == {"t": "pong"}
