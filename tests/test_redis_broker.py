"""RedisBroker on a real redis-server: payloads unchanged, subscriptions confirmed
before ``subscribe`` returns, and outages: publishes refused while Redis is down,
every channel subscribed again and ``resumed`` called once it is back, the outage
logged once when it begins and once when it ends."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest
from conftest import eventually
from redisutil import RedisServer, free_port

import chitchat

Got = list[tuple[str, str]]


async def started(url: str, got: Got, resumed: asyncio.Event | None = None,
                  **options: float) -> chitchat.RedisBroker:
    broker = chitchat.RedisBroker(url, backoff=(0.05, 0.2), **options)  # type: ignore[arg-type]
    await broker.start(lambda channel, payload: got.append((channel, payload)),
                       resumed.set if resumed is not None else None)
    return broker


@pytest.mark.gen_test
async def test_payloads_arrive_unchanged_on_the_channels_subscribed(
        redis_url: str, redis_prefix: str) -> None:
    got: Got = []
    a = chitchat.RedisBroker(redis_url, prefix=redis_prefix)
    b = chitchat.RedisBroker(redis_url, prefix=redis_prefix)
    other = chitchat.RedisBroker(redis_url, prefix=redis_prefix + "x")
    await a.start(lambda channel, payload: got.append((channel, payload)))
    try:
        payloads = ['m1|{"id":"x","data":"é ✓ \\u2028"}', "c|{}", "p|" + "x" * 100_000]
        for n, payload in enumerate(payloads):
            await a.subscribe(f"r:room {n}")  # confirmed on return: no wait before publishing
            await b.publish(f"r:room {n}", payload)
        await other.publish("r:room 0", "e9|{}")  # another prefix: another chat
        await b.publish("r:not subscribed", "m1|{}")
        await a.unsubscribe("r:room 2")
        await b.publish("r:room 2", "m2|{}")
        await b.publish("r:room 1", "c|last")
        await eventually(lambda: ("r:room 1", "c|last") in got)
        assert got == [(f"r:room {n}", p) for n, p in enumerate(payloads)] + [
            ("r:room 1", "c|last")]
    finally:
        for broker in (a, b, other):
            await broker.stop()


@pytest.mark.gen_test(timeout=60)
async def test_after_an_outage_every_channel_is_subscribed_again_then_resumed(
        own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    got: Got = []
    resumed = asyncio.Event()
    caplog.set_level(logging.INFO, "chitchat.redis")
    broker = await started(own_redis.url, got, resumed)
    try:
        for channel in ("r:a", "r:b", "u:ann"):
            await broker.subscribe(channel)
        await broker.publish("r:a", "m1|before")
        await eventually(lambda: got == [("r:a", "m1|before")])
        own_redis.kill()
        for _ in range(5):  # refused, never taken and dropped; logged once
            with pytest.raises(chitchat.BackendError):
                await broker.publish("r:a", "m2|during")
        await broker.subscribe("r:c")  # while down: recorded, subscribed on reconnect
        await broker.unsubscribe("r:b")
        assert not resumed.is_set()
        own_redis.start()
        await asyncio.wait_for(resumed.wait(), 15)
        for channel in ("r:a", "r:b", "r:c", "u:ann"):
            await broker.publish(channel, f"m3|after {channel}")
        await eventually(lambda: len(got) == 4)
        assert got[1:] == [(c, f"m3|after {c}") for c in ("r:a", "r:c", "u:ann")]
        lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
        back = [r for r in caplog.records if "Redis is back" in r.getMessage()]
        assert (len(lost), len(back)) == (1, 1)
        assert lost[0].levelno == logging.ERROR
    finally:
        await broker.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_hung_redis_counts_as_lost(own_redis: RedisServer) -> None:
    got: Got = []
    resumed = asyncio.Event()
    broker = await started(own_redis.url, got, resumed, ping_every=0.2)
    try:
        await broker.subscribe("r:a")
        assert own_redis.proc is not None
        own_redis.proc.send_signal(signal.SIGSTOP)  # silent, its sockets open
        await eventually(lambda: not broker._live, timeout=10)  # 3 unanswered pings
        own_redis.proc.send_signal(signal.SIGCONT)
        await asyncio.wait_for(resumed.wait(), 15)
        await broker.publish("r:a", "m1|x")
        await eventually(lambda: got == [("r:a", "m1|x")])
    finally:
        await broker.stop()


@pytest.mark.gen_test
async def test_start_without_a_redis_fails_loudly() -> None:
    broker = chitchat.RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(chitchat.BackendError):
        await broker.start(lambda channel, payload: None)
    await broker.stop()
