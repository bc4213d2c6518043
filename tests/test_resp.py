"""chitchat._resp, the engine's own RESP2 connection: replies parsed whole however the
bytes are cut, errors kept apart, commands pipelined in order, failures raised."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redisutil import RedisServer

from chitchat import _resp

REPLIES = (b"+OK\r\n:-42\r\n$-1\r\n*-1\r\n$0\r\n\r\n-NOSCRIPT no script\r\n"
           b"*3\r\n$7\r\nmessage\r\n$3\r\n\xe2\x98\x83\r\n*2\r\n:1\r\n$4\r\na\r\nb\r\n"
           b"$100000\r\n" + b"x" * 100_000 + b"\r\n")


@pytest.mark.gen_test
@pytest.mark.parametrize("cut", [1, 7, 1000, len(REPLIES)])
async def test_replies_are_parsed_whole_however_the_bytes_arrive(cut: int) -> None:
    got: list[Any] = []
    protocol = _resp._Protocol(got.append)
    for start in range(0, len(REPLIES), cut):
        protocol.data_received(REPLIES[start:start + cut])
    errors = [g for g in got if isinstance(g, _resp.ReplyError)]
    assert [g for g in got if not isinstance(g, _resp.ReplyError)] == [
        "OK", -42, None, None, "", ["message", "☃", [1, "a\r\nb"]], "x" * 100_000]
    assert [str(e) for e in errors] == ["NOSCRIPT no script"]
    assert protocol.buf == bytearray()


@pytest.mark.gen_test
async def test_commands_issued_together_are_answered_in_order(redis_url: str,
                                                              redis_prefix: str) -> None:
    connection = _resp.Connection(redis_url)
    try:
        key = redis_prefix + ":list"
        results = await asyncio.gather(*[connection.call("RPUSH", key, n) for n in range(500)])
        assert results == list(range(1, 501))
        assert await connection.call("LRANGE", key, 0, 2) == ["0", "1", "2"]
        with pytest.raises(_resp.ReplyError, match="WRONGTYPE"):
            await connection.call("GET", key)
        assert await connection.call("DEL", key) == 1  # the error broke nothing
    finally:
        await connection.close()


@pytest.mark.gen_test
async def test_a_lost_server_fails_what_was_waiting_and_a_new_one_is_used_after(
        own_redis: RedisServer) -> None:
    connection = _resp.Connection(own_redis.url)
    try:
        assert await connection.call("PING") == "PONG"
        own_redis.kill()
        with pytest.raises(_resp.Down):
            await connection.call("PING")
        own_redis.start()
        assert await connection.call("PING") == "PONG"
        script = _resp.Script("return ARGV[1] .. KEYS[1]")
        assert await connection.script(script, ["k"], ["v"]) == "vk"
        await connection.call("SCRIPT", "FLUSH")
        assert await connection.script(script, ["k"], ["w"]) == "wk"  # loaded again
    finally:
        await connection.close()
