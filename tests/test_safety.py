"""Safe by default: origins, disabled transports, no session cookie, framing rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from clients import SockJSWebSocketClient
from conftest import Connect

import chitchat
from chitchat.origin import OriginPolicy


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", ["sockjs-websocket", "sockjs-xhr-polling"])
@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:1", "null", "https://127.0.0.1.evil.example"]
)
async def test_page_from_another_origin_cannot_open_a_chat_connection(
    connect: Connect, kind: str, origin: str, chat: Any
) -> None:
    client = await connect(origin=origin, kind=kind)
    error = await client.recv_type("error")
    assert error["code"] == 4004 and error["fatal"] is True
    # Whatever it sends next, it is never authorized.
    client.send({"t": "auth", "v": 1, "data": {"name": "ann", "token": "secret-ann"}})
    await client.closed(timeout=10)
    assert chat.online() == []


@pytest.mark.gen_test
async def test_native_websocket_handshake_from_another_origin_is_refused(
    http_server: Any, base_url: str
) -> None:
    url = base_url.replace("http", "ws") + "/chat/ws"
    request = tornado.httpclient.HTTPRequest(url, headers={"Origin": "http://evil.example"})
    with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
        await tornado.websocket.websocket_connect(request)
    assert caught.value.code == 403


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", ["sockjs-websocket", "sockjs-xhr-polling", "native-websocket"])
async def test_page_from_the_serving_host_may_connect(
    connect: Connect, base_url: str, kind: str
) -> None:
    client = await connect(origin=base_url, kind=kind)
    welcome = await client.auth({"name": "ann", "token": "secret-ann"})
    assert welcome["t"] == "welcome"


@pytest.mark.gen_test
@pytest.mark.chat(allowed_origins=["https://app.example"])
async def test_allowed_origin_may_connect(connect: Connect) -> None:
    client = await connect(origin="https://app.example", kind="sockjs-websocket")
    assert (await client.auth({"name": "ann", "token": "secret-ann"}))["t"] == "welcome"


def test_origin_policy_rules() -> None:
    same = OriginPolicy()
    assert same.allows("http://chat.example", "chat.example")
    assert same.allows("http://chat.example:80", "chat.example")
    assert same.allows("https://chat.example", "chat.example:443")
    assert not same.allows("http://chat.example:8080", "chat.example")
    assert not same.allows("http://other.example", "chat.example")
    assert not same.allows("null", "chat.example")
    assert not same.allows("garbage", "chat.example")
    assert same.allows(None, "chat.example")  # not a browser, or a same-origin GET
    listed = OriginPolicy(["https://app.example", "partner.example:8443"])
    assert listed.allows("https://app.example", "chat.example")
    assert not listed.allows("http://app.example", "chat.example")
    assert listed.allows("https://partner.example:8443", "chat.example")
    assert not listed.allows("https://partner.example", "chat.example")
    assert OriginPolicy("*").allows("null", "chat.example")


@pytest.mark.gen_test
@pytest.mark.parametrize("transport_path", ["jsonp?c=alert(document.domain)//", "htmlfile?c=x"])
async def test_jsonp_and_htmlfile_are_off(
    http_client: Any, base_url: str, transport_path: str
) -> None:
    response = await http_client.fetch(
        f"{base_url}/chat/000/abc/{transport_path}", raise_error=False
    )
    assert response.code == 404
    response = await http_client.fetch(
        f"{base_url}/chat/000/abc/jsonp_send", method="POST", body="d=x", raise_error=False
    )
    assert response.code == 404


@pytest.mark.gen_test
async def test_no_session_cookie_is_set(http_client: Any, base_url: str) -> None:
    response = await http_client.fetch(f"{base_url}/chat/000/abc/xhr", method="POST", body="")
    assert response.body == b"o\n"
    assert "Set-Cookie" not in response.headers
    info = await http_client.fetch(f"{base_url}/chat/info")
    assert b'"cookie_needed":false' in info.body.replace(b" ", b"")


@pytest.mark.gen_test
async def test_iframe_page_may_only_be_framed_by_allowed_origins(
    http_client: Any, base_url: str
) -> None:
    response = await http_client.fetch(f"{base_url}/chat/iframe.html")
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert b'src="/chat/chitchat.js"' in response.body


@pytest.mark.gen_test
async def test_client_script_is_served(http_client: Any, base_url: str) -> None:
    response = await http_client.fetch(f"{base_url}/chat/chitchat.js")
    assert "javascript" in response.headers["Content-Type"]
    body = response.body.decode()
    assert "SockJS" in body and "chitchat" in body


@pytest.mark.gen_test
@pytest.mark.parametrize("transport", ["sockjs-websocket", "native-websocket"], indirect=True)
async def test_closed_connection_leaves_online(connect: Connect, chat: Any) -> None:
    # (An xhr-polling client cannot say goodbye: sockjs-tornado expires its session
    # disconnect_delay, 5 s, after its last poll; the heartbeat covers the rest.)
    _ann, bob = await connect("ann"), await connect("bob")
    assert chat.online() == ["ann", "bob"]
    await bob.aclose()
    for _ in range(200):
        if chat.online() == ["ann"]:
            break
        await asyncio.sleep(0.05)
    assert chat.online() == ["ann"]


@pytest.mark.gen_test
async def test_install_handlers_mounts_the_chat_on_an_existing_application(
    http_server: Any, app: Any, chat: Any, base_url: str
) -> None:
    other = chitchat.Chat()

    @other.authorize
    def anyone(data: Any, good: Any, bad: Any) -> None:
        good(data["name"])

    other.install_handlers(app, prefix="/other")
    client = SockJSWebSocketClient(base_url, prefix="/other")
    await client.connect()
    assert (await client.auth({"name": "ann"}))["user"] == "ann"
    assert other.online() == ["ann"] and chat.online() == []
    await client.aclose()


@pytest.mark.gen_test
async def test_raw_sockjs_websocket_route_speaks_chitchat_in_bare_text(
    http_server: Any, base_url: str
) -> None:
    url = base_url.replace("http", "ws") + "/chat/websocket"
    ws = await tornado.websocket.websocket_connect(url)
    ws.write_message('{"t": "auth", "v": 1, "data": {"name": "ann", "token": "secret-ann"}}')
    welcome = await asyncio.wait_for(ws.read_message(), 5)
    assert isinstance(welcome, str) and welcome.startswith('{"t":"welcome"')
    ws.close()
    evil = tornado.httpclient.HTTPRequest(url, headers={"Origin": "http://evil.example"})
    ws = await tornado.websocket.websocket_connect(evil)
    refused = await asyncio.wait_for(ws.read_message(), 5)
    assert isinstance(refused, str) and '"code":4004' in refused
    ws.close()
