"""Two Chats on one Redis, each with its own HTTP server and Redis connections (two
processes, as far as chitchat can tell), and clients over real sockets: the server-side
API reaches every node, presence is shared, and ``Publisher`` reports its errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.httpserver
import tornado.testing
import tornado.web
from clients import NativeWebSocketClient, SockJSWebSocketClient
from conftest import eventually, make_chat
from redisutil import RedisServer
from test_rooms import join, next_message, presence

import chitchat


class Node:
    def __init__(self, chat: chitchat.Chat, presence: chitchat.RedisPresence, url: str,
                 server: Any, clients: list[Any]) -> None:
        self.chat, self.presence, self.url, self.server = chat, presence, url, server
        self.clients = clients


@contextlib.asynccontextmanager
async def nodes(redis_url: str, prefix: str, count: int = 2,
                **options: Any) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    clients: list[Any] = []
    for _ in range(count):
        backend = chitchat.RedisPresence(redis_url, prefix=prefix)
        chat = make_chat(broker=chitchat.RedisBroker(redis_url, prefix=prefix),
                         store=chitchat.RedisStore(redis_url, prefix=prefix),
                         presence_backend=backend, presence_grace=0, presence_interval=0.05,
                         **options)
        server = tornado.httpserver.HTTPServer(tornado.web.Application(chat.router().urls))
        sock, port = tornado.testing.bind_unused_port()
        server.add_sockets([sock])
        started.append(Node(chat, backend, f"http://127.0.0.1:{port}", server, clients))
    try:
        yield started
    finally:
        for client in clients:
            await client.aclose()
        for node in started:
            node.server.stop()
            await node.chat.stop(timeout=1)


async def user(node: Node, name: str, kind: Any = NativeWebSocketClient) -> Any:
    client = kind(node.url)
    node.clients.append(client)
    await client.connect()
    assert (await client.auth({"name": name, "token": "secret-" + name}))["t"] == "welcome"
    return client


@pytest.mark.gen_test(timeout=30)
async def test_server_calls_on_one_node_reach_connections_on_the_other(
        redis_url: str, redis_prefix: str) -> None:
    async with nodes(redis_url, redis_prefix) as (a, b):
        ann = await user(a, "ann")
        bob = await user(b, "bob", SockJSWebSocketClient)
        await a.chat.message("bob", {"text": "a push"})  # bob is on b
        push = await bob.recv_where(lambda f: f["t"] == "messages" and f["list"][0]["room"]
                                    is None)
        assert push["list"][0]["data"] == {"text": "a push"}
        message = await b.chat.publish("main", {"text": "from b"}, user="bot")
        assert (await next_message(ann, "main"))[0]["id"] == message.id  # ann is on a
        await a.chat.add("bob", "ops")
        joined = await bob.recv_type("joined")
        assert joined["room"] == "ops" and joined["members"] == ["bob"]
        await a.chat.remove("bob", "ops")
        assert await bob.recv_type("removed") == {"t": "removed", "room": "ops"}
        assert await a.chat.history("main") == [message]


@pytest.mark.gen_test(timeout=30)
async def test_members_on_one_node_include_users_of_the_other(
        redis_url: str, redis_prefix: str) -> None:
    async with nodes(redis_url, redis_prefix) as (a, b):
        ann = await user(a, "ann")
        _, ack = await join(ann, "dev")
        assert ack["members"] == ["ann"]
        bob = await user(b, "bob")
        _, ack = await join(bob, "dev")
        assert ack["members"] == ["ann", "bob"]
        assert (await presence(ann, "dev"))["joined"] == ["bob"]
        await eventually(lambda: a.chat.members("dev") == ["ann", "bob"])
        assert b.chat.members("dev") == ["ann", "bob"]
        # Any room, followed here or not: ask the presence backend (docs/design.md).
        assert await a.presence.members("main") == (["ann", "bob"], 2)
        bob.send({"t": "leave", "ref": 7, "room": "dev"})
        assert (await presence(ann, "dev"))["left"] == ["bob"]
        await eventually(lambda: a.chat.members("dev") == ["ann"])


@pytest.mark.gen_test(timeout=30)
async def test_a_room_past_the_presence_limit_across_nodes_carries_no_member_list(
        redis_url: str, redis_prefix: str) -> None:
    async with nodes(redis_url, redis_prefix, presence_limit=1) as (a, b):
        ann = await user(a, "ann")
        _, ack = await join(ann, "dev")
        assert ack["members"] == ["ann"]
        bob = await user(b, "bob")  # the second member, on the other node: past the limit
        _, ack = await join(bob, "dev")
        assert ack["members"] is None
        assert await a.presence.members("dev") == (["ann", "bob"], 2)


@pytest.mark.gen_test(timeout=30)
async def test_a_stopped_node_takes_its_users_out_at_once(
        redis_url: str, redis_prefix: str) -> None:
    async with nodes(redis_url, redis_prefix) as (a, b):
        ann = await user(a, "ann")
        await user(b, "bob")
        await eventually(lambda: a.chat.members("main") == ["ann", "bob"])
        b.server.stop()
        await b.chat.stop(timeout=1)
        # ann may see bob join first (a frame of its own, or none when the join and the
        # leave fall in one presence interval); then bob leaves.
        await ann.recv_where(lambda f: f["t"] == "presence" and f["room"] == "main"
                             and f["left"] == ["bob"], timeout=5)


@pytest.mark.gen_test(timeout=30)
async def test_a_publisher_reports_what_goes_wrong(own_redis: RedisServer) -> None:
    publisher = chitchat.Publisher(own_redis.url)
    try:
        with pytest.raises(ValueError):
            await publisher.publish("", {"text": "no room"})
        with pytest.raises(ValueError):
            await publisher.publish("main", {"nan": float("nan")})
        with pytest.raises(TypeError):
            await publisher.message(7, {"text": "not a user"})  # type: ignore[arg-type]
        message = await publisher.publish("main", {"text": "ok"}, user="bot")
        assert (message.room, message.seq, message.user) == ("main", 1, "bot")
        own_redis.kill()
        with pytest.raises(chitchat.BackendError):
            await publisher.publish("main", {"text": "redis is down"})
        with pytest.raises(chitchat.BackendError):
            await publisher.message("ann", {"text": "redis is down"})
    finally:
        await publisher.close()
