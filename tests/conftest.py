"""Fixtures: a real Tornado server with a Chat mounted, and clients on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redisutil
import tornado.web
from clients import TRANSPORTS

import chitchat

Connect = Callable[..., Awaitable[Any]]


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (checked every 10 ms), at most ``timeout``
    seconds: for server-side state that no frame announces."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the condition did not hold in time")
        await asyncio.sleep(0.01)


def make_chat(**options: Any) -> chitchat.Chat:
    """The chat most tests use: token auth, a length limit, an "upper:" transform."""
    chat = chitchat.Chat(**options)

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        name = data.get("name") if isinstance(data, dict) else None
        if name and data.get("token") == "secret-" + name:
            good(name, {"online": chat.online()})
        else:
            bad({"invalid": True})

    @chat.message
    async def on_message(user: chitchat.User, data: Any, good: Any, bad: Any) -> None:
        text = data.get("text", "")
        if len(text) > 500:
            bad({"reason": "too long"})
        elif text.startswith("upper:"):
            good({"text": text[6:].upper()})
        else:
            good()

    return chat


@pytest.fixture
def chat_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Chat options for one test: ``@pytest.mark.chat(heartbeat=0.3)``."""
    marker = request.node.get_closest_marker("chat")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def chat(chat_options: dict[str, Any]) -> chitchat.Chat:
    return make_chat(**chat_options)


@pytest.fixture
def app(chat: chitchat.Chat) -> tornado.web.Application:
    return tornado.web.Application(chat.router("/chat").urls)


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


#: Every server transport; a module runs its tests on each with
#: ``pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)``.
ALL_TRANSPORTS = list(TRANSPORTS)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sockjs-websocket")


@pytest.fixture
def connect(http_server: Any, io_loop: Any, base_url: str, transport: str) -> Connect:
    """``await connect("ann")``: a client of ``transport``, authorized as ann (welcome
    frame read). ``await connect()``: connected, not authorized."""
    clients: list[Any] = []

    async def _connect(name: str | None = None, *, origin: str | None = None,
                       kind: str | None = None) -> Any:
        client = TRANSPORTS[kind or transport](base_url, origin=origin)
        clients.append(client)
        await client.connect()
        if name is not None:
            welcome = await client.auth({"name": name, "token": "secret-" + name})
            assert welcome["t"] == "welcome", welcome
            client.welcome = welcome
        return client

    yield _connect

    async def close_all() -> None:
        for client in clients:
            await client.aclose()

    io_loop.run_sync(close_all)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The run's Redis (tests/run.sh starts it); each test keeps to its own prefix."""
    yield redisutil.shared_url()
    redisutil.stop_shared()


@pytest.fixture
def redis_prefix() -> str:
    return redisutil.prefix()


@pytest.fixture
def own_redis() -> Iterator[redisutil.RedisServer]:
    """A redis-server of this test's own, to restart, flush or reconfigure."""
    server = redisutil.RedisServer().start()
    yield server
    server.stop()
