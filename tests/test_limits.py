"""Rate limits and connection caps: hit each one, see the coded error, stay usable, and
nobody else is affected. Over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Connect

from chitchat.limits import Caps, TokenBucket, client_ip, parse_networks
from chitchat.transports.base import RequestInfo


def send(ref: int, **data: Any) -> dict[str, Any]:
    return {"t": "send", "ref": ref, "data": data or {"text": f"m{ref}"}}


async def answers(client: Any, refs: range) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for _ in refs:
        frame = await client.recv_where(
            lambda f: f.get("ref") in refs and f.get("t") in ("ack", "nack", "error"))
        found[frame["ref"]] = frame
    return found


@pytest.mark.gen_test
@pytest.mark.chat(send_rate=(2, 3))
async def test_sends_over_the_users_rate_are_refused_one_by_one_and_others_go_on(
    connect: Connect,
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for ref in range(6):
        ann.send(send(ref))
    got = await answers(ann, range(6))
    assert [got[r]["t"] for r in range(6)] == ["ack"] * 3 + ["error"] * 3
    for ref in range(3, 6):
        error = got[ref]
        assert (error["code"], error["fatal"]) == (4010, False)
        assert "too fast" in error["reason"] and 0 < error["retry"] <= 1500
    # bob has his own bucket.
    assert (await bob.request(send(1)))["t"] == "ack"
    # ann is still connected and may send again once her bucket refills.
    await asyncio.sleep(got[5]["retry"] / 1000)
    assert (await ann.request(send(9)))["t"] == "ack"


@pytest.mark.gen_test
@pytest.mark.chat(send_rate=(1, 2))
async def test_the_send_rate_is_shared_by_all_connections_of_a_user(connect: Connect) -> None:
    tab1, tab2 = await connect("ann"), await connect("ann")
    assert (await tab1.request(send(1)))["t"] == "ack"
    assert (await tab2.request(send(1)))["t"] == "ack"
    refused = await tab1.request(send(2))
    assert (refused["t"], refused["code"]) == ("error", 4010)


@pytest.mark.gen_test
@pytest.mark.chat(frame_rate=(5, 10))
async def test_frames_over_the_connections_rate_are_refused_and_it_stays_open(
    connect: Connect,
) -> None:
    ann = await connect("ann")
    for _ in range(15):
        ann.send({"t": "ping"})
    got = [await ann.recv_where(lambda f: f["t"] in ("pong", "error")) for _ in range(15)]
    assert [f["t"] for f in got].count("pong") == 9  # the auth frame took the tenth token
    errors = [f for f in got if f["t"] == "error"]
    assert len(errors) == 6 and {e["code"] for e in errors} == {4010}
    await asyncio.sleep(errors[-1]["retry"] / 1000)  # the server's own hint
    assert (await ann.request(send(1)))["t"] == "ack"


@pytest.mark.gen_test
@pytest.mark.chat(frame_rate=(1, 5))
async def test_a_client_that_keeps_flooding_is_closed_with_a_code_that_says_so(
    connect: Connect,
) -> None:
    flood, bob = await connect("ann"), await connect("bob")
    for _ in range(200):
        flood.send({"t": "ping"})
    closing = await flood.recv_where(lambda f: f.get("code") == 4012)
    assert closing["fatal"] is True
    await flood.closed(timeout=10)
    assert (await bob.request(send(1)))["t"] == "ack"


@pytest.mark.gen_test
@pytest.mark.chat(max_user_connections=2)
async def test_past_the_per_user_cap_a_connection_is_refused_and_the_others_stay(
    connect: Connect,
) -> None:
    first, second = await connect("ann"), await connect("ann")
    third = await connect()
    refused = await third.auth({"name": "ann", "token": "secret-ann"})
    assert (refused["t"], refused["code"], refused["fatal"]) == ("error", 4013, True)
    await third.closed(timeout=10)
    ack = await first.request(send(1))
    assert (await second.recv_type("messages"))["list"] == [ack["msg"]]
    assert (await (await connect("bob")).request(send(1)))["t"] == "ack"


@pytest.mark.gen_test
@pytest.mark.chat(max_ip_connections=2)
async def test_past_the_per_address_cap_even_unauthenticated_connections_are_refused(
    connect: Connect,
) -> None:
    idle1, idle2 = await connect(), await connect()  # never authorized: they count
    third = await connect()
    refused = await third.recv_type("error")
    assert (refused["code"], refused["fatal"]) == (4013, True)
    await idle1.aclose()
    await idle1.closed(timeout=10)
    del idle2


@pytest.mark.gen_test
@pytest.mark.chat(max_connections=1)
async def test_past_the_total_cap_connections_are_refused(connect: Connect) -> None:
    ann = await connect("ann")
    other = await connect()
    assert (await other.recv_type("error"))["code"] == 4013
    assert (await ann.request(send(1)))["t"] == "ack"


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy() -> None:
    headers = {"X-Forwarded-For": "203.0.113.7, 10.0.0.2"}
    from_proxy = RequestInfo("10.0.0.1", headers)
    from_anyone = RequestInfo("198.51.100.9", headers)
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(from_proxy, ()) == "10.0.0.1"  # not told to trust: the header is ignored
    assert client_ip(from_proxy, trusted) == "203.0.113.7"  # right-most untrusted hop
    assert client_ip(from_anyone, trusted) == "198.51.100.9"  # not from the proxy: ignored


def test_caps_count_and_release() -> None:
    caps = Caps(total=3, per_ip=2)
    assert caps.admit("a") is None and caps.admit("a") is None
    assert "address" in (caps.admit("a") or "")
    assert caps.admit("b") is None
    assert "as many connections" in (caps.admit("c") or "")
    caps.release("a")
    assert caps.admit("c") is None


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst


@pytest.mark.gen_test
@pytest.mark.chat(trusted_proxies=["127.0.0.1"], max_ip_connections=1)
async def test_behind_a_trusted_proxy_the_cap_is_per_forwarded_address(
    http_server: Any, base_url: str,
) -> None:
    from clients import NativeWebSocketClient

    class Forwarded(NativeWebSocketClient):
        def __init__(self, base: str, address: str) -> None:
            super().__init__(base)
            self.address = address

        def _headers(self) -> dict[str, str]:
            return {"X-Forwarded-For": self.address}

    one, two = Forwarded(base_url, "203.0.113.1"), Forwarded(base_url, "203.0.113.2")
    again = Forwarded(base_url, "203.0.113.1")
    for client in (one, two, again):
        await client.connect()
    assert (await again.recv_type("error"))["code"] == 4013
    for client in (one, two):
        welcome = await client.auth({"name": "ann", "token": "secret-ann"})
        assert welcome["t"] == "welcome"
    for client in (one, two, again):
        await client.aclose()
