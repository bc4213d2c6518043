"""RedisStore's own behaviour on a real redis-server (the contract itself is in
tests/test_store_contract.py): seqs atomic across connections, a new epoch when Redis
lost the data, acknowledged appends surviving a kill of Redis, retention by count in
the append itself, send keys with a time to live, the server checks, and errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import eventually
from redisutil import RedisServer

import chitchat
from chitchat import _resp, channels, jsonsafe
from chitchat.log import Draft
from chitchat.store import Retention

_n = iter(range(10**9))


@contextlib.asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[chitchat.RedisStore]:
    store = chitchat.RedisStore(url, **options)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def draft(user: str | None = "ann", text: str = "hi") -> Draft:
    data = {"text": text}
    return Draft(f"m{next(_n)}", user, data, jsonsafe.dumps(data), 1_700_000_000_000)


@pytest.mark.gen_test
async def test_two_connections_appending_at_once_get_one_contiguous_log(
        redis_url: str, redis_prefix: str) -> None:
    stores = [chitchat.RedisStore(redis_url, prefix=redis_prefix) for _ in range(2)]
    for store in stores:
        await store.start()
    try:
        results = await asyncio.gather(*[stores[n % 2].append("a", draft(text=str(n)))
                                         for n in range(300)])
        assert sorted(r.message.seq for r in results) == list(range(1, 301))
        for store in stores:
            position, entries = await store.read_after("a", 0, 1000)
            assert position.last == 300
            assert [e.text for e in entries] == [r.message.raw for r in
                                                 sorted(results, key=lambda r: r.message.seq)]
    finally:
        for store in stores:
            await store.close()


@pytest.mark.gen_test
async def test_a_flushed_redis_gives_every_room_a_new_epoch(own_redis: RedisServer) -> None:
    async with opened(own_redis.url) as store:
        await store.append("a", draft())
        before = await store.position("a")
        client = aioredis.from_url(own_redis.url)
        await client.flushdb()
        await client.aclose()
        after = await store.position("a")
        assert after.epoch != before.epoch and (after.first, after.last) == (1, 0)
        assert (await store.append("a", draft())).message.seq == 1


@pytest.mark.gen_test
async def test_acknowledged_appends_survive_a_killed_redis(own_redis: RedisServer) -> None:
    async with opened(own_redis.url) as store:
        sent = [(await store.append("a", draft(), key=f"k{n}")).message for n in range(20)]
        epoch = (await store.position("a")).epoch
        own_redis.restart()  # SIGKILL: only the append-only file remains
        position, entries = await store.read_after("a", 0, 100)
        assert (position.epoch, position.last) == (epoch, 20)
        assert [e.text for e in entries] == [m.raw for m in sent]
        assert (await store.append("a", draft(), key="k3")).duplicate


@pytest.mark.gen_test
async def test_the_append_itself_keeps_the_retention_count(redis_url: str,
                                                           redis_prefix: str) -> None:
    async with opened(redis_url, prefix=redis_prefix, capacity=5) as store:
        messages = [(await store.append("a", draft())).message for _ in range(12)]
        position = await store.position("a")
        assert (position.first, position.last) == (8, 12)  # no trim() ran
        assert [m.seq for m in (await store.recent("a", 100))[1]] == [8, 9, 10, 11, 12]
        assert await store.get("a", messages[0].id) is None
        await store.mark_read("bob", "a", 2)
        assert (await store.read_state("bob", "a", 5)).unread == 5
        client = aioredis.from_url(redis_url, decode_responses=True)
        assert await client.hlen(f"{redis_prefix}:{{a}}:log") == 5
        assert await client.hlen(f"{redis_prefix}:{{a}}:ids") == 5
        await client.aclose()


@pytest.mark.gen_test
async def test_send_keys_live_as_long_as_the_dedup_window(redis_url: str,
                                                          redis_prefix: str) -> None:
    store = chitchat.RedisStore(redis_url, prefix=redis_prefix, dedup_window=600)
    await store.start()
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await store.append("a", draft("ann"), key="k1")
        keys = [k async for k in client.scan_iter(f"{redis_prefix}:sk:*")]
        assert len(keys) == 1 and 590 <= await client.ttl(keys[0]) <= 600
        await store.trim(Retention(count=None), 600, 1e12)  # far future: dropped now
        assert await client.exists(keys[0]) == 0
        assert await store.find("ann", "k1") is None
    finally:
        await client.aclose()
        await store.close()


@pytest.mark.gen_test
async def test_odd_room_and_user_names_never_share_keys(redis_url: str,
                                                        redis_prefix: str) -> None:
    async with opened(redis_url, prefix=redis_prefix) as store:
        rooms = ["a", "a}:log", "a}", "{a}", "a:b", "☃ {x}"]
        users = ["u", "u}:own", "u0000000000000001", "000001u", ":"]
        for i, room in enumerate(rooms):
            for user in users:
                await store.append(room, draft(user), key=f"k{i}")
        for i, room in enumerate(rooms):
            position, entries = await store.read_after(room, 0, 100)
            assert position.last == len(users)
            assert [e.seq for e in entries] == list(range(1, len(users) + 1))
            for user in users:
                assert (await store.read_state(user, room, 10)).unread == len(users) - 1
                found = await store.find(user, f"k{i}")
                assert found is not None and (found.user, found.room) == (user, room)
            await store.mark_read("u", room, len(users))
        assert (await store.unread("u", [])) == dict.fromkeys(rooms, 0)
        assert (await store.unread("u}:own", rooms)) == dict.fromkeys(rooms, len(users) - 1)


@pytest.mark.gen_test
async def test_a_redis_that_may_evict_keys_is_refused(own_redis: RedisServer) -> None:
    client = aioredis.from_url(own_redis.url)
    await client.config_set("maxmemory-policy", "allkeys-lru")
    await client.aclose()
    store = chitchat.RedisStore(own_redis.url)
    with pytest.raises(chitchat.ConfigurationError, match="noeviction"):
        await store.start()
    await store.close()


@pytest.mark.gen_test
async def test_a_redis_without_a_synced_append_only_file_is_warned_about(
        own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    client = aioredis.from_url(own_redis.url)
    await client.config_set("appendfsync", "everysec")
    for attempt in ("everysec", "no aof"):
        caplog.clear()
        store = chitchat.RedisStore(own_redis.url)
        with caplog.at_level(logging.WARNING, "chitchat.redis"):
            await store.start()
        await store.close()
        warned = [r.getMessage() for r in caplog.records if r.name == "chitchat.redis"]
        assert len(warned) == 1 and ("everysec" in warned[0] if attempt == "everysec"
                                     else "appendonly no" in warned[0])
        await client.config_set("appendonly", "no")
    await client.aclose()


@pytest.mark.gen_test
async def test_an_unreachable_redis_is_a_backend_error(own_redis: RedisServer) -> None:
    store = chitchat.RedisStore(own_redis.url)
    await store.start()
    own_redis.kill()
    try:
        for call in (store.append("a", draft()), store.position("a"),
                     store.read_after("a", 0, 5), store.find("ann", "k")):
            with pytest.raises(chitchat.BackendError) as caught:
                await call
            assert caught.value.__cause__ is not None
    finally:
        await store.close()


def test_without_redis_py_the_error_says_how_to_install_it(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    for make in (lambda: chitchat.Chat(redis="redis://127.0.0.1:1/0"),
                 lambda: chitchat.RedisStore("redis://127.0.0.1:1/0"),
                 lambda: chitchat.Publisher("redis://127.0.0.1:1/0")):
        with pytest.raises(chitchat.ConfigurationError, match=r"pip install chitchat\[redis\]"):
            make()


def test_a_bad_url_is_refused_at_construction() -> None:
    for make in (chitchat.RedisStore, chitchat.RedisBroker, chitchat.RedisPresence):
        with pytest.raises(chitchat.ConfigurationError, match="not a Redis URL"):
            make("http://127.0.0.1:6379/0")


@pytest.mark.gen_test
async def test_a_publishing_store_publishes_each_entry_from_its_script(
        redis_url: str, redis_prefix: str) -> None:
    got: list[Any] = []
    subscriber = await _resp.Subscriber.open(redis_url, got.append)
    subscriber.send("SUBSCRIBE", f"{redis_prefix}:r:a")
    try:
        async with opened(redis_url, prefix=redis_prefix, publish=True) as store:
            await eventually(lambda: len(got) == 1)  # subscribed
            message = (await store.append("a", draft(), key="k")).message
            again = await store.append("a", draft(), key="k")  # a duplicate: no entry
            edit = await store.edit("a", message.id, {"t": 1}, '{"t":1}', 5)
            react = await store.react("a", message.id, "bob", "👍", 20)
            remove = await store.remove("a", message.id)
            assert again.duplicate and edit and react and remove
            expected = [channels.entry(1, message.raw, True)] + [
                channels.entry(c.entry.seq, c.entry.text, False) for c in (edit, react, remove)]
            await eventually(lambda: len(got) == 5)
            assert [push[2] for push in got[1:]] == expected
    finally:
        subscriber.close()
