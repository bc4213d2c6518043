"""The Redis engine's auto-pipeline (chitchat._redis.Pipeline, on redis-py) against a real
redis-server: what is issued in one loop turn goes in one pipeline and is answered in
order, a connection lost mid-batch fails only the calls it had not answered, scripts
are loaded again after SCRIPT FLUSH or a restart, an outage and a hung server fail
calls instead of hanging them."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redisutil import RedisServer

from chitchat import _redis

COUNTER = _redis.Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")


async def reads_processed(client: aioredis.Redis) -> int:
    """How many times the server has read from a client socket."""
    return int((await client.info("stats"))["total_reads_processed"])


@pytest.mark.gen_test
async def test_calls_issued_together_go_in_one_pipeline_and_are_answered_in_order(
        own_redis: RedisServer) -> None:
    pipeline = _redis.Pipeline(own_redis.url)
    client = aioredis.from_url(own_redis.url)
    try:
        assert await pipeline.call("PING") == "PONG"  # connected, scripts not loaded yet
        before = await reads_processed(client)
        calls = [pipeline.call("RPUSH", "list", n) if n % 2 else
                 pipeline.script(COUNTER, ["counter"], [1]) for n in range(500)]
        wrong = pipeline.call("GET", "list")  # an error reply fails that call alone
        after = [pipeline.call("LLEN", "list")]
        results = await asyncio.gather(*calls)
        assert results == [n // 2 + 1 for n in range(500)]  # each its own reply, in order
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            await wrong
        assert await after[0] == 250
        # Redis read the 502 commands (30 KB) in a few socket reads, not one or more
        # per command (the INFO that counts is one more).
        reads = await reads_processed(client) - before
        assert reads <= 8, reads
    finally:
        await client.aclose()
        await pipeline.close()


@pytest.mark.gen_test
async def test_a_connection_lost_mid_batch_fails_only_the_calls_not_answered(
        redis_url: str, redis_prefix: str) -> None:
    pipeline = _redis.Pipeline(redis_url)
    key = f"{redis_prefix}:n"
    try:
        me = await pipeline.call("CLIENT", "ID")
        # One batch: the connection is closed by Redis after the second reply; the
        # third command never runs.
        first = pipeline.call("INCR", key)
        kill = pipeline.call("CLIENT", "KILL", "ID", me, "SKIPME", "no")
        third = pipeline.call("INCR", key)
        assert await first == 1
        assert await kill == 1
        with pytest.raises(redis.exceptions.ConnectionError):
            await third
        assert await pipeline.call("INCR", key) == 2  # a new connection: third never ran
        assert await pipeline.call("CLIENT", "ID") != me
    finally:
        await pipeline.close()


@pytest.mark.gen_test
async def test_scripts_are_loaded_again_after_script_flush(redis_url: str,
                                                           redis_prefix: str) -> None:
    pipeline = _redis.Pipeline(redis_url)
    key = f"{redis_prefix}:c"
    try:
        assert await pipeline.script(COUNTER, [key], [1]) == 1
        await pipeline.call("SCRIPT", "FLUSH")
        # Every run in the batch finds the script gone (NOSCRIPT: none of them ran):
        # it is loaded and they run again, each once, in their order.
        results = await asyncio.gather(*[pipeline.script(COUNTER, [key], [n])
                                         for n in range(1, 6)])
        assert results == [2, 4, 7, 11, 16]
    finally:
        await pipeline.close()


@pytest.mark.gen_test
async def test_a_script_redis_refuses_fails_its_calls_and_no_others(redis_url: str) -> None:
    pipeline = _redis.Pipeline(redis_url)
    broken = _redis.Script("this is not lua")
    try:
        bad = [pipeline.script(broken, [], []) for _ in range(2)]
        good = pipeline.call("PING")
        for call in bad:
            with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)compil|syntax"):
                await call
        assert await good == "PONG"
    finally:
        await pipeline.close()


@pytest.mark.gen_test(timeout=60)
async def test_calls_fail_while_redis_is_down_and_work_once_it_is_back(
        own_redis: RedisServer) -> None:
    pipeline = _redis.Pipeline(own_redis.url)
    try:
        assert await pipeline.script(COUNTER, ["k"], [1]) == 1
        own_redis.kill()
        for _ in range(3):
            with pytest.raises(redis.exceptions.ConnectionError):
                await pipeline.script(COUNTER, ["k"], [1])
        own_redis.start()
        # The restarted server has the data (append-only file) but not the script.
        assert await pipeline.script(COUNTER, ["k"], [1]) == 2
    finally:
        await pipeline.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_hung_redis_fails_calls_after_the_timeout(own_redis: RedisServer) -> None:
    pipeline = _redis.Pipeline(own_redis.url, timeout=0.5)
    assert own_redis.proc is not None
    try:
        assert await pipeline.call("PING") == "PONG"
        own_redis.proc.send_signal(signal.SIGSTOP)  # silent, its sockets open
        calls: list[Any] = [pipeline.call("PING") for _ in range(3)]
        for call in calls:
            with pytest.raises(redis.exceptions.TimeoutError, match=r"within 0\.5 s"):
                await call
        own_redis.proc.send_signal(signal.SIGCONT)
        assert await pipeline.call("PING") == "PONG"
    finally:
        if own_redis.proc is not None:
            own_redis.proc.send_signal(signal.SIGCONT)
        await pipeline.close()


@pytest.mark.gen_test
async def test_close_finishes_the_calls_queued_before_it(redis_url: str,
                                                         redis_prefix: str) -> None:
    pipeline = _redis.Pipeline(redis_url)
    key = f"{redis_prefix}:q"
    calls = [pipeline.call("RPUSH", key, n) for n in range(10)]
    await pipeline.close()
    assert [call.result() for call in calls] == list(range(1, 11))
    assert await pipeline.call("LLEN", key) == 10  # usable again: it connects anew
    await pipeline.close()
