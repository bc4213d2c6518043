"""One bad frame must never hurt anyone else: the five defects found by attacking the
server as the README writes it, each over every transport, each ending with a fresh
pair of native-WebSocket clients that chat normally and see a clean history."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect, eventually

every_transport = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)
sockjs_transports = pytest.mark.parametrize(
    "transport", [t for t in ALL_TRANSPORTS if t.startswith("sockjs")], indirect=True)

SURROGATE_ESCAPE = '{"t":"send","ref":1,"data":{"text":"\\ud800"}}'
# The same frame with the lone surrogate as a character: SockJS decodes its JSON framing
# before chitchat sees the frame, so this reaches the server over the SockJS transports.
SURROGATE_CHAR = '{"t":"send","ref":1,"data":{"text":"\ud800"}}'
DEEP = '{"t":"send","ref":1,"data":{"a":' + "[" * 30_000 + "]" * 30_000 + "}}"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


async def a_fresh_pair_chats(connect: Connect, kept: list[dict[str, Any]]) -> None:
    """Two new native-WebSocket clients: both get exactly ``kept`` as history, and chat."""
    dee = await connect("dee", kind="native-websocket")
    eve = await connect("eve", kind="native-websocket")
    for client in (dee, eve):
        history = (await client.recv_type("messages"))["list"] if kept else []
        assert history == kept
    ack = await dee.request({"t": "send", "ref": 1, "data": {"text": "hello eve"}})
    assert ack["t"] == "ack"
    assert (await eve.recv_type("messages"))["list"] == [ack["msg"]]


async def refused_then_fine(connect: Connect, text: str, code: int) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ann.send(text)
    error = await ann.recv_type("error")
    assert (error["code"], error["fatal"], error.get("ref")) == (code, False, 1)
    ok = await ann.request({"t": "send", "ref": 2, "data": {"text": "still here"}})
    assert ok["t"] == "ack"
    # The refused frame reached no one: bob's next message is the good one.
    assert (await bob.recv_type("messages"))["list"] == [ok["msg"]]
    assert [f for f in ann.pending() if f.get("t") == "error"] == []  # exactly one error
    await a_fresh_pair_chats(connect, [ok["msg"]])


@every_transport
@pytest.mark.gen_test
async def test_a_lone_surrogate_is_refused_and_never_poisons_history(connect: Connect) -> None:
    await refused_then_fine(connect, SURROGATE_ESCAPE, 4000)


# A WebSocket text frame cannot carry a lone surrogate at all (it is not UTF-8), but
# SockJS's JSON framing can: over SockJS it reaches chitchat as a character.
@sockjs_transports
@pytest.mark.gen_test
async def test_a_lone_surrogate_character_is_refused_too(connect: Connect) -> None:
    await refused_then_fine(connect, SURROGATE_CHAR, 4000)


@every_transport
@pytest.mark.gen_test
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_json_numbers_are_malformed(connect: Connect, constant: str) -> None:
    await refused_then_fine(connect, '{"t":"send","ref":1,"data":{"n":' + constant + "}}", 4000)


@every_transport
@pytest.mark.gen_test
async def test_deep_nesting_gets_an_error_frame_not_a_traceback(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(DEEP) < 64 * 1024  # under max_frame_size: only the depth is wrong
    await refused_then_fine(connect, DEEP, 4011)
    assert not [r for r in caplog.records if r.exc_info], "no traceback was logged"


@every_transport
@pytest.mark.gen_test
async def test_nesting_up_to_max_depth_is_accepted_and_one_more_level_is_not(
    connect: Connect,
) -> None:
    ann = await connect("ann")
    # The frame is level 1 and data level 2: 30 more lists make 32, the default limit.
    ann.send('{"t":"send","ref":2,"data":{"a":' + nested(30) + "}}")
    assert (await ann.recv_where(lambda f: f.get("ref") == 2))["t"] == "ack"
    ann.send('{"t":"send","ref":3,"data":{"a":' + nested(31) + "}}")
    error = await ann.recv_where(lambda f: f.get("ref") == 3)
    assert (error["t"], error["code"]) == ("error", 4011)


@every_transport
@pytest.mark.gen_test
@pytest.mark.chat(max_depth=4)
async def test_max_depth_is_configurable(connect: Connect) -> None:
    ann = await connect("ann")
    ann.send('{"t":"send","ref":1,"data":{"a":' + nested(2) + "}}")
    assert (await ann.recv_where(lambda f: f.get("ref") == 1))["t"] == "ack"
    ann.send('{"t":"send","ref":2,"data":{"a":' + nested(3) + "}}")
    assert (await ann.recv_where(lambda f: f.get("ref") == 2))["code"] == 4011


@every_transport
@pytest.mark.gen_test
async def test_a_ref_a_browser_cannot_represent_is_invalid(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    ann.send('{"t":"send","ref":9007199254740992,"data":{"text":"x"}}')
    error = await ann.recv_type("error")
    assert (error["code"], "ref" in error) == (4007, False)
    top = await ann.request({"t": "send", "ref": 2**53 - 1, "data": {"text": "max"}})
    assert top["t"] == "ack"
    assert (await bob.recv_type("messages"))["list"] == [top["msg"]]
    await a_fresh_pair_chats(connect, [top["msg"]])


@every_transport
@pytest.mark.gen_test
@pytest.mark.parametrize("payload", [{"text": "\ud800"}, {"n": float("nan")},
                                     {"deep": deep_list(40)}],
                         ids=["surrogate", "nan", "too-deep"])
async def test_a_handler_payload_that_cannot_be_delivered_is_internal_and_logged_once(
    connect: Connect, chat: Any, payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    @chat.message
    def poison(user: Any, data: Any, good: Any, bad: Any) -> None:
        good(payload if data.get("text") == "poison" else None)

    ann, bob = await connect("ann"), await connect("bob")
    answer = await ann.request({"t": "send", "ref": 1, "data": {"text": "poison"}})
    assert answer == {"t": "nack", "ref": 1, "meta": {"error": "internal"}}
    logged = [r for r in caplog.records if "cannot be delivered" in r.getMessage()]
    assert len(logged) == 1
    ok = await ann.request({"t": "send", "ref": 2, "data": {"text": "fine"}})
    assert (await bob.recv_type("messages"))["list"] == [ok["msg"]]
    await a_fresh_pair_chats(connect, [ok["msg"]])


@every_transport
@pytest.mark.gen_test
async def test_bad_frames_in_a_loop_are_logged_once_with_their_count(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ann = await connect("ann")
    for _ in range(20):
        ann.send("{not json")
    for _ in range(20):
        assert (await ann.recv_type("error"))["code"] == 4000
    reports = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]
    assert len(reports) == 1 and "1 bad frame(s)" in reports[0], reports
    await ann.aclose()
    await ann.closed(timeout=10)
    # The rest is counted, and reported once when the connection closes.
    def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]

    await eventually(lambda: len(reports()) == 2, timeout=20)  # xhr-polling: 5 s to notice
    assert "19 bad frame(s)" in reports()[1], reports()


@every_transport
@pytest.mark.gen_test
async def test_tokens_and_frame_content_never_reach_the_log(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "tok-3f9a-SHOULD-NOT-BE-LOGGED"
    client = await connect()
    answer = await client.auth({"name": "ann", "token": secret})
    assert answer["t"] == "unauthorized"
    ann = await connect("ann")
    ann.send('{"t":"send","ref":1,"data":{"token":"' + secret + '"')  # truncated
    assert (await ann.recv_type("error"))["code"] == 4000
    assert all(secret not in r.getMessage() for r in caplog.records)
