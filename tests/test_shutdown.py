"""Graceful shutdown: ``await chat.stop()`` answers what is under way, tells every client
to reconnect after a jittered delay (4014), refuses newcomers, and ends within a bound."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import ALL_TRANSPORTS, Connect

import chitchat

pytestmark = pytest.mark.parametrize("transport", ALL_TRANSPORTS, indirect=True)


@pytest.mark.gen_test
async def test_stop_answers_in_flight_calls_then_tells_clients_to_reconnect(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    started = asyncio.Event()

    @chat.message
    async def slow(user: Any, data: Any, good: Any, bad: Any) -> None:
        started.set()
        await asyncio.sleep(0.3)
        good()

    ann, bob = await connect("ann"), await connect("bob")
    ann.send({"t": "send", "ref": 1, "data": {"text": "in flight"}})
    await started.wait()
    loop = asyncio.get_running_loop()
    begun = loop.time()
    stopping = loop.create_task(chat.stop(timeout=4, retry=3))
    late = await connect()  # a newcomer while stopping
    assert (await late.recv_type("error"))["code"] == 4014
    assert (await ann.recv_type("ack"))["ref"] == 1  # answered before the goodbye
    for client in (ann, bob):
        bye = await client.recv_type("error")
        assert (bye["code"], bye["fatal"], bye["retry"]) == (4014, True, 3000)
        await client.closed(timeout=10)
    await stopping
    assert loop.time() - begun < 4 + 1


@pytest.mark.gen_test
async def test_stop_does_not_wait_past_its_bound_for_a_handler_that_hangs(
    connect: Connect, chat: chitchat.Chat,
) -> None:
    @chat.message
    async def hangs(user: Any, data: Any, good: Any, bad: Any) -> None:
        await asyncio.Event().wait()

    ann = await connect("ann")
    ann.send({"t": "send", "ref": 1, "data": {}})
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await chat.stop(timeout=1)
    assert loop.time() - begun < 1 + 6.5  # half the timeout for handlers, then closes
    assert (await ann.recv_type("error"))["code"] == 4014
