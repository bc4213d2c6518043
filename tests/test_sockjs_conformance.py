"""Mounting chitchat changes nothing in how sockjs-tornado speaks SockJS.

One Tornado server mounts a chitchat router at ``/chat`` and a plain sockjs-tornado
``SockJSRouter`` at ``/plain``, the latter with exactly the settings chitchat changes on
purpose. Every test asks both the same thing and compares status, headers and body (or
the SockJS frames). The differences docs/transports.md lists ("What differs from plain
sockjs-tornado, on purpose") are asserted explicitly where they show; anything else that
differs fails.

The plain connection class does what chitchat does at the SockJS level where that is
comparable: nothing at open. It echoes messages, and closes the session (sockjs-tornado's
``SockJSConnection.close()``) when it receives ``"close"``; chitchat closes when its
authorize handler calls ``bad()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.web
from sockjs.tornado import SockJSConnection, SockJSRouter, proto  # type: ignore[import-untyped]
from sockjs.tornado import router as sockjs_router
from sockjs.tornado import static as sockjs_static
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

import chitchat
from chitchat.cors import needs_checked_cors, with_checked_cors
from chitchat.router import ChatRouter, ClientScriptHandler, FramableIFrameHandler
from chitchat.transports.sockjs import ChitchatConnection
from chitchat.transports.websocket import WebSocketTransport

CHAT, PLAIN = "/chat", "/plain"
#: The page the CORS requests come from: allowed by the chat, so that sockjs-tornado's
#: CORS answers can be compared; ``FOREIGN`` is not (the documented difference).
PAGE, FOREIGN = "http://page.example", "http://foreign.example"

#: What chitchat sets on purpose (docs/transports.md), spelled out rather than imported
#: from chitchat.router: a silent change there then shows up as a difference here.
PLAIN_SETTINGS: dict[str, Any] = {
    "disabled_transports": ["jsonp", "htmlfile"],
    "jsessionid": False,
    "sockjs_url": CHAT + "/chitchat.js",
}

#: Headers present on both answers whose values depend on the clock.
TIME_DEPENDENT = frozenset({"date", "expires", "server"})

#: The frame each server answers with a close: chitchat's authorize handler calls bad();
#: the plain connection closes on "close".
CLOSE_TRIGGER = {
    CHAT: json.dumps({"t": "auth", "v": 1, "data": {"name": "ann"}}),
    PLAIN: "close",
}
#: Not ASCII, so that the JSON encoding of the carried strings is compared too.
UNAUTHORIZED_REASON = "conformance \u2713 \u2028 test"
HELLO = "hello \u2713"

#: A SockJS close frame: c[<int>,"<string>"] (sockjs.tornado.proto.disconnect).
CLOSE_FRAME = re.compile(r'c\[(\d+),"([^"\\]*)"\]\Z')

TIMEOUT = 5.0


class PlainConnection(SockJSConnection):  # type: ignore[misc]
    """A plain sockjs-tornado app: sends nothing at open (as chitchat), echoes every
    message, and closes the session its library's way on ``"close"``."""

    def on_message(self, message: Any) -> None:
        if message == "close":
            self.close()  # sockjs-tornado 1.0.7: no arguments, c[3000,"Go away!"]
        else:
            self.send(message)


@dataclass
class Mounted:
    chat: chitchat.Chat
    router: ChatRouter
    plain: SockJSRouter


@pytest.fixture
def mounted(io_loop: Any) -> Mounted:
    # Room for the padded auth frames; the page origin allowed (CORS compared).
    chat = chitchat.Chat(max_frame_size=200_000, allowed_origins=[PAGE])

    @chat.authorize
    def authorize(data: Any, good: Any, bad: Any) -> None:
        # Echoes the auth data: the test chooses the size of the unauthorized frame.
        bad({"reason": UNAUTHORIZED_REASON, "echo": data})

    return Mounted(chat, chat.router(CHAT), SockJSRouter(PlainConnection, PLAIN, PLAIN_SETTINGS))


@pytest.fixture
def app(mounted: Mounted) -> tornado.web.Application:
    return tornado.web.Application(mounted.router.urls + mounted.plain.urls)


@pytest.fixture
def served(http_server: Any, base_url: str) -> str:
    """The base URL, with the server listening (``http_client`` implies it; WebSocket
    tests do not use that client)."""
    return base_url


# -- helpers --------------------------------------------------------------------------------


def sid() -> str:
    return secrets.token_hex(4)


async def ask(
    client: AsyncHTTPClient, base_url: str, prefix: str, path: str, **kwargs: Any
) -> HTTPResponse:
    return await client.fetch(
        base_url + prefix + path, raise_error=False, request_timeout=TIMEOUT, **kwargs
    )


async def ask_both(
    client: AsyncHTTPClient, base_url: str, path: str, **kwargs: Any
) -> tuple[HTTPResponse, HTTPResponse]:
    """The same request to the chitchat router and to the plain one."""
    return (
        await ask(client, base_url, CHAT, path, **kwargs),
        await ask(client, base_url, PLAIN, path, **kwargs),
    )


def headers(response: HTTPResponse, varying: frozenset[str] = frozenset()) -> dict[str, str]:
    """Lower-cased headers; a clock-dependent value, or one named in ``varying`` (where
    the bodies legitimately differ), is compared by presence only."""
    result: dict[str, str] = {}
    for name, value in response.headers.get_all():
        name = name.lower()
        assert name not in result, f"repeated header {name}"
        result[name] = "<present>" if name in TIME_DEPENDENT | varying else value
    return result


def assert_same(chat: HTTPResponse, plain: HTTPResponse) -> None:
    """Status, headers and body all equal."""
    assert (chat.code, headers(chat), chat.body) == (plain.code, headers(plain), plain.body)


def sockjs_strings(frame: str) -> list[str]:
    """The payload of an ``a[...]`` frame; checks it is an array of strings, written
    byte for byte as sockjs-tornado writes it (``Session.send_message``)."""
    assert frame.startswith("a["), frame
    payload = json.loads(frame[1:])
    assert isinstance(payload, list) and all(isinstance(s, str) for s in payload), frame
    assert frame == "a[" + ",".join(proto.json_encode(s) for s in payload) + "]"
    return payload


def close_frame(frame: str) -> tuple[int, str]:
    """A ``c[code,"reason"]`` frame, as sockjs-tornado writes it."""
    match = CLOSE_FRAME.match(frame)
    assert match, f"not a SockJS close frame: {frame!r}"
    code, reason = int(match[1]), match[2]
    assert frame == proto.disconnect(code, reason)
    return code, reason


def assert_chitchat_close(frames: list[str], data: Any = None) -> None:
    """chitchat's refusal: one chat-level ``unauthorized`` frame inside ``a[...]``, then a
    SockJS close frame with chitchat's code. Both are content carried by sockjs-tornado's
    own framing (docs/transports.md: framing and close frames are sockjs-tornado's own)."""
    assert len(frames) == 2, frames
    (text,) = sockjs_strings(frames[0])
    meta = {"reason": UNAUTHORIZED_REASON, "echo": {"name": "ann"} if data is None else data}
    assert json.loads(text) == {"t": "unauthorized", "meta": meta}
    assert close_frame(frames[1]) == (4003, "unauthorized")


def assert_plain_close(frames: list[str]) -> None:
    assert frames == [proto.disconnect(3000, "Go away!")]


class WS:
    """A websocket client that keeps every message (``None`` when closed), and can tell
    whether the server has sent anything not yet read."""

    conn: WebSocketClientConnection

    @classmethod
    async def connect(cls, url: str) -> WS:
        self = cls()
        self.messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.conn = await websocket_connect(
            HTTPRequest(url, request_timeout=TIMEOUT), on_message_callback=self.messages.put_nowait
        )
        return self

    async def recv(self) -> str | bytes | None:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def recv_until_closed(self) -> list[str]:
        frames = []
        while (message := await self.recv()) is not None:
            assert isinstance(message, str)
            frames.append(message)
        return frames

    async def nothing_unread(self) -> bool:
        """Ping, wait for the pong: whatever the server wrote before it has arrived."""
        pong = asyncio.Event()
        self.conn.on_pong = lambda data: pong.set()  # type: ignore[method-assign]
        self.conn.ping(b"conformance")
        await asyncio.wait_for(pong.wait(), TIMEOUT)
        return self.messages.empty()

    def send(self, text: str) -> None:
        self.conn.write_message(text)

    def close(self) -> None:
        self.conn.close()


async def ws_both(base_url: str, path: str) -> tuple[WS, WS]:
    ws_base = base_url.replace("http", "ws", 1)
    return await WS.connect(ws_base + CHAT + path), await WS.connect(ws_base + PLAIN + path)


# -- configuration and routes ---------------------------------------------------------------


def test_settings_are_sockjs_tornado_defaults_but_the_documented_ones(mounted: Mounted) -> None:
    assert mounted.router.sockjs.settings == mounted.plain.settings
    # docs/transports.md: jsonp/htmlfile off, jsessionid off, sockjs_url -> the bundle.
    defaults = sockjs_router.DEFAULT_SETTINGS
    assert set(mounted.plain.settings) == set(defaults)
    changed = {k for k, v in mounted.plain.settings.items() if v != defaults[k]}
    assert changed == {"disabled_transports", "jsessionid", "sockjs_url"}
    assert mounted.router.sockjs.get_connection_class() is ChitchatConnection
    assert issubclass(ChitchatConnection, SockJSConnection)


def test_routes_are_sockjs_tornado_routes_but_the_documented_ones(mounted: Mounted) -> None:
    def table(urls: list[Any], prefix: str) -> list[tuple[str, Any]]:
        rules = []
        for pattern, handler, *_ in urls:
            assert pattern.startswith(prefix)
            rules.append(("<p>" + pattern[len(prefix):], handler))
        return rules

    plain = table(mounted.plain.urls, PLAIN)
    # docs/transports.md: the jsonp_send route removed; the iframe page served by a
    # subclass that adds the CSP header; the CORS-answering handlers by subclasses that
    # change only who gets CORS headers; chitchat.js and the native /ws added.
    assert sockjs_static.IFrameHandler in {h for _, h in plain}
    assert issubclass(FramableIFrameHandler, sockjs_static.IFrameHandler)

    def chitchat_handler(handler: Any) -> Any:
        if handler is sockjs_static.IFrameHandler:
            return FramableIFrameHandler
        if needs_checked_cors(handler):
            checked = with_checked_cors(handler)
            assert checked.__mro__[2] is handler
            # The mixin before it changes these methods only.
            assert {k for k, v in vars(checked.__mro__[1]).items() if callable(v)} == {
                "_cors_allowed", "preflight", "verify_origin", "options"}
            return checked
        return handler

    cors = [h for _, h in plain if needs_checked_cors(h)]
    assert {h.__name__ for h in cors} == {
        "InfoHandler", "ChunkingTestHandler", "XhrPollingTransport", "XhrSendHandler",
        "XhrStreamingTransport", "EventSourceTransport", "JSONPSendHandler"}
    expected = [(r"<p>/(chitchat\.js)", ClientScriptHandler), ("<p>/ws", WebSocketTransport)]
    expected += [(p, chitchat_handler(h)) for p, h in plain if not p.endswith("/jsonp_send$")]
    assert table(mounted.router.urls, CHAT) == expected
    for pattern, handler, kwargs in mounted.router.urls[2:]:
        assert kwargs == {"server": mounted.router.sockjs}, (pattern, handler)


# -- plain HTTP answers ---------------------------------------------------------------------

PREFLIGHT = {
    "Origin": PAGE,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}

SAME_ANSWERS = [  # method, path, request options, the status both give
    pytest.param("GET", "", {}, 200, id="greeting"),
    pytest.param("GET", "/", {}, 200, id="greeting-slash"),
    pytest.param("HEAD", "/", {}, 405, id="greeting-head"),
    pytest.param("POST", "/", {"body": b"x"}, 405, id="greeting-post"),
    pytest.param("OPTIONS", "/000/x/xhr", {"headers": PREFLIGHT}, 204, id="preflight-xhr"),
    pytest.param("OPTIONS", "/000/x/xhr_send", {"headers": PREFLIGHT}, 204,
                 id="preflight-xhr_send"),
    pytest.param("OPTIONS", "/000/x/xhr_streaming", {"headers": PREFLIGHT}, 204,
                 id="preflight-xhr_streaming"),
    pytest.param("OPTIONS", "/info", {"headers": PREFLIGHT}, 204, id="preflight-info"),
    pytest.param("OPTIONS", "/chunking_test", {"headers": PREFLIGHT}, 204, id="preflight-chunking"),
    pytest.param("OPTIONS", "/000/x/xhr", {}, 204, id="preflight-no-origin"),
    pytest.param("POST", "/000/unknown/xhr_send", {"body": b'["x"]'}, 404, id="xhr_send-unknown"),
    pytest.param("GET", "/000/x/xhr", {}, 405, id="xhr-get"),
    pytest.param("GET", "/000/x/websocket", {}, 400, id="websocket-no-upgrade"),
    pytest.param("POST", "/000/x/websocket", {"body": b""}, 405, id="websocket-post"),
    pytest.param("GET", "/websocket", {}, 400, id="raw-websocket-no-upgrade"),
    pytest.param("GET", "/000/x/nonexistent", {}, 404, id="unknown-transport"),
    pytest.param("GET", "/000/x.y/xhr_streaming", {}, 404, id="dotted-session"),
    # The disabled transports (docs/transports.md): no route on either router.
    pytest.param("GET", "/000/x/jsonp?c=alert(1)//", {}, 404, id="jsonp-disabled"),
    pytest.param("GET", "/000/x/htmlfile?c=cb", {}, 404, id="htmlfile-disabled"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path", "kwargs", "status"), SAME_ANSWERS)
async def test_same_http_answer(
    http_client: AsyncHTTPClient, base_url: str, method: str, path: str,
    kwargs: dict[str, Any], status: int,
) -> None:
    chat, plain = await ask_both(http_client, base_url, path, method=method, **kwargs)
    assert_same(chat, plain)
    assert chat.code == status
    assert "set-cookie" not in headers(chat)


#: Routes sockjs-tornado answers with CORS headers (its PreflightHandler subclasses)
#: that answer at once; the streaming ones are read by tests/test_cors.py.
CORS_ROUTES = [
    pytest.param("GET", "/info", id="info"),
    pytest.param("POST", "/000/{s}/xhr", id="xhr"),
    pytest.param("POST", "/000/{s}/xhr_send", id="xhr_send-unknown-session"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path"), CORS_ROUTES)
async def test_foreign_origin_gets_the_same_answer_without_cors_headers(
    http_client: AsyncHTTPClient, base_url: str, method: str, path: str
) -> None:
    # Deliberate (docs/transports.md, "CORS"): sockjs-tornado reflects any Origin with
    # credentials; chitchat sends CORS headers only to origins the chat allows, and
    # answers the rest exactly as sockjs-tornado does otherwise.
    kwargs: dict[str, Any] = {"method": method, "headers": {"Origin": FOREIGN}}
    if method == "POST":
        kwargs["body"] = b'["x"]' if path.endswith("xhr_send") else b""
    chat, plain = await ask_both(http_client, base_url, path.format(s=sid()), **kwargs)
    varying = frozenset({"content-length", "etag"}) if path == "/info" else frozenset()
    plain_cors = {k: v for k, v in headers(plain, varying).items()
                  if k.startswith("access-control-")}
    assert plain_cors == {"access-control-allow-origin": FOREIGN,
                          "access-control-allow-credentials": "true"}
    assert chat.code == plain.code
    assert headers(chat, varying) == {k: v for k, v in headers(plain, varying).items()
                                      if k not in plain_cors}
    # (chunking_test, the other such route, takes 4 s to answer: its refused preflight
    # is below, and tests/test_cors.py checks its answer's headers.)
    if path != "/info":  # the info body carries a random entropy
        assert chat.body == plain.body


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/000/x/xhr", "/000/x/xhr_send", "/000/x/xhr_streaming",
                                  "/info", "/chunking_test"])
async def test_foreign_origin_preflight_is_refused(
    http_client: AsyncHTTPClient, base_url: str, path: str
) -> None:
    # Deliberate (docs/transports.md, "CORS"): 403 with nothing but Tornado's own
    # headers, where sockjs-tornado says 204 with CORS and year-long cache headers.
    request = dict(PREFLIGHT, Origin=FOREIGN)
    chat, plain = await ask_both(http_client, base_url, path, method="OPTIONS",
                                 headers=request)
    assert plain.code == 204 and headers(plain)["access-control-allow-origin"] == FOREIGN
    assert (chat.code, chat.body) == (403, b"")
    assert set(headers(chat)) == {"server", "date", "content-type", "content-length",
                                  "connection"}  # Tornado's own


@pytest.mark.gen_test
async def test_greeting(http_client: AsyncHTTPClient, base_url: str) -> None:
    chat, plain = await ask_both(http_client, base_url, "")
    assert_same(chat, plain)
    assert (chat.code, chat.body) == (200, b"Welcome to SockJS!\n")


@pytest.mark.gen_test
async def test_info(http_client: AsyncHTTPClient, base_url: str) -> None:
    chat, plain = await ask_both(http_client, base_url, "/info")
    # The body carries a random "entropy": its length and hash (ETag) vary.
    varying = frozenset({"content-length", "etag"})
    assert (chat.code, headers(chat, varying)) == (plain.code, headers(plain, varying))
    assert chat.code == 200 and "etag" in headers(chat)
    chat_info, plain_info = json.loads(chat.body), json.loads(plain.body)
    assert isinstance(chat_info.pop("entropy"), int)
    assert isinstance(plain_info.pop("entropy"), int)
    assert chat_info == plain_info == {"websocket": True, "cookie_needed": False,
                                       "origins": ["*:*"]}


@pytest.mark.gen_test
@pytest.mark.parametrize("page", ["/iframe.html", "/iframe-abc.html", "/iframe-0.3.4.html"])
async def test_iframe_page(http_client: AsyncHTTPClient, base_url: str, page: str) -> None:
    chat, plain = await ask_both(http_client, base_url, page)
    assert chat.code == plain.code == 200
    assert chat.body == plain.body  # same sockjs_url, so the very same page
    assert b'<script src="/chat/chitchat.js"></script>' in chat.body
    chat_headers, plain_headers = headers(chat), headers(plain)
    assert chat_headers["etag"] == plain_headers["etag"] == hashlib.md5(chat.body).hexdigest()
    # Deliberate (docs/transports.md): the iframe page carries a CSP frame-ancestors
    # header. It is the only difference.
    extra = {k: v for k, v in chat_headers.items() if k not in plain_headers}
    assert extra == {"content-security-policy": f"frame-ancestors 'self' {PAGE}:80"}
    assert {k: v for k, v in chat_headers.items() if k in plain_headers} == plain_headers

    # Revalidation: the same 304 from both (sockjs-tornado clears every header on a 304,
    # the CSP one included; the browser keeps the one stored with the 200).
    etag = chat_headers["etag"]
    chat, plain = await ask_both(http_client, base_url, page, headers={"If-None-Match": etag})
    assert_same(chat, plain)
    assert chat.code == 304


@pytest.mark.gen_test
async def test_chitchat_js_and_ws_exist_only_under_the_chat_prefix(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    # Deliberate (docs/transports.md, "Built in"): the router serves the client bundle
    # (the sockjs_url) and the native WebSocket transport next to SockJS.
    chat, plain = await ask_both(http_client, base_url, "/chitchat.js")
    assert chat.code == 200 and "javascript" in chat.headers["Content-Type"]
    assert plain.code == 404
    chat, plain = await ask_both(http_client, base_url, "/ws")
    assert chat.code == 400  # a WebSocket endpoint, asked without Upgrade
    assert plain.code == 404


@pytest.mark.gen_test
async def test_jsonp_send_is_404_on_both(http_client: AsyncHTTPClient, base_url: str) -> None:
    kwargs: dict[str, Any] = {"method": "POST", "body": b"d=%5B%22x%22%5D",
                              "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    chat, plain = await ask_both(http_client, base_url, "/000/unknown/jsonp_send", **kwargs)
    assert chat.code == plain.code == 404
    # Deliberate (docs/transports.md: "the jsonp_send route removed"): sockjs-tornado keeps
    # the route with jsonp off, so the plain 404 is its handler's (unknown session: CORS
    # headers, empty body) while chitchat's is Tornado's (no route) ...
    assert plain.body == b"" and "access-control-allow-origin" in headers(plain)
    assert b"404: Not Found" in chat.body
    # ... and on the plain router jsonp_send still feeds an open xhr session.
    session = sid()
    opened = await ask_both(http_client, base_url, f"/000/{session}/xhr", method="POST", body=b"")
    assert [r.body for r in opened] == [b"o\n", b"o\n"]
    chat, plain = await ask_both(http_client, base_url, f"/000/{session}/jsonp_send", **kwargs)
    assert (plain.code, plain.body) == (200, b"ok")
    assert chat.code == 404


# -- xhr polling ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_xhr_polling(http_client: AsyncHTTPClient, base_url: str) -> None:
    session = sid()

    def post(path: str, body: bytes) -> Any:
        return ask_both(http_client, base_url, f"/000/{session}/{path}", method="POST", body=body)

    chat, plain = await post("xhr", b"")
    assert_same(chat, plain)
    assert (chat.code, chat.body) == (200, b"o\n")
    assert headers(chat)["content-type"] == "application/javascript; charset=UTF-8"

    chat, plain = await post("xhr_send", json.dumps([HELLO]).encode())
    assert_same(chat, plain)
    assert chat.code == 204
    chat, plain = await ask_both(
        http_client, base_url, f"/000/{session}/xhr_send", method="POST", body=b'["x"]',
        headers={"Origin": PAGE},
    )
    assert_same(chat, plain)  # with CORS headers this time
    assert chat.code == 204

    # The frames queued meanwhile come in one a[...] frame each, with the same headers;
    # the content differs: plain echoes, chitchat answers each string (not a chitchat
    # frame) with a chat-level error frame (docs/transports.md: chat frames are content
    # carried by sockjs-tornado's own framing).
    chat, plain = await post("xhr", b"")
    varying = frozenset({"content-length"})
    assert (chat.code, headers(chat, varying)) == (plain.code, headers(plain, varying))
    assert chat.body.endswith(b"\n") and plain.body.endswith(b"\n")
    assert sockjs_strings(plain.body.decode().rstrip("\n")) == [HELLO, "x"]
    replies = sockjs_strings(chat.body.decode().rstrip("\n"))
    assert [json.loads(text)["t"] for text in replies] == ["error", "error"]

    for broken in (b"[", b"", b'["unterminated'):
        chat, plain = await post("xhr_send", broken)
        assert_same(chat, plain)
        assert chat.code == 500

    # Close: each server closes the session; both end with a SockJS close frame.
    frames: dict[str, list[str]] = {}
    for prefix in (CHAT, PLAIN):
        sent = await ask(http_client, base_url, prefix, f"/000/{session}/xhr_send",
                         method="POST", body=json.dumps([CLOSE_TRIGGER[prefix]]).encode())
        assert sent.code == 204
        frames[prefix] = []
        while not frames[prefix] or not frames[prefix][-1].startswith("c"):
            poll = await ask(http_client, base_url, prefix, f"/000/{session}/xhr",
                             method="POST", body=b"")
            assert poll.code == 200
            frames[prefix] += poll.body.decode().splitlines()
    assert_chitchat_close(frames[CHAT])
    assert_plain_close(frames[PLAIN])

    # A closed session answers every poll with its close frame again, and refuses sends.
    chat, plain = await post("xhr", b"")
    assert (chat.code, headers(chat, varying)) == (plain.code, headers(plain, varying))
    assert chat.body.decode() == frames[CHAT][-1] + "\n"
    assert plain.body.decode() == frames[PLAIN][-1] + "\n"
    chat, plain = await post("xhr_send", b'["x"]')
    assert_same(chat, plain)
    assert chat.code == 404


# -- streaming ------------------------------------------------------------------------------


def _xhr_streaming_frames(text: str) -> tuple[str, list[str]]:
    prelude, _, rest = text.partition("\n")
    return prelude, rest.splitlines()


def _eventsource_frames(text: str) -> tuple[str, list[str]]:
    prelude, rest = text[:2], text[2:]
    events = [e for e in rest.split("\r\n\r\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return prelude, [e[len("data: "):] for e in events]


STREAMING = [
    pytest.param("xhr_streaming", "POST", _xhr_streaming_frames, "h" * 2048, id="xhr_streaming"),
    pytest.param("eventsource", "GET", _eventsource_frames, "\r\n", id="eventsource"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("transport", "method", "parse", "prelude"), STREAMING)
async def test_streaming_open_and_close(
    http_client: AsyncHTTPClient, base_url: str, transport: str, method: str,
    parse: Callable[[str], tuple[str, list[str]]], prelude: str,
) -> None:
    answers: dict[str, tuple[HTTPResponse, str]] = {}
    for prefix in (CHAT, PLAIN):
        session = sid()
        chunks: list[bytes] = []
        opened = asyncio.Event()

        def got(chunk: bytes, chunks: list[bytes] = chunks, opened: asyncio.Event = opened) -> None:
            chunks.append(chunk)
            if parse(b"".join(chunks).decode())[1][:1] == ["o"]:
                opened.set()

        stream = asyncio.ensure_future(ask(
            http_client, base_url, prefix, f"/000/{session}/{transport}", method=method,
            body=b"" if method == "POST" else None, streaming_callback=got,
        ))
        await asyncio.wait_for(opened.wait(), TIMEOUT)
        sent = await ask(http_client, base_url, prefix, f"/000/{session}/xhr_send",
                         method="POST", body=json.dumps([CLOSE_TRIGGER[prefix]]).encode())
        assert sent.code == 204
        answers[prefix] = (await stream, b"".join(chunks).decode())

    (chat, chat_text), (plain, plain_text) = answers[CHAT], answers[PLAIN]
    assert (chat.code, headers(chat)) == (plain.code, headers(plain))
    chat_prelude, chat_frames = parse(chat_text)
    plain_prelude, plain_frames = parse(plain_text)
    assert chat_prelude == plain_prelude == prelude
    assert chat_frames[0] == plain_frames[0] == "o"
    assert_chitchat_close(chat_frames[1:])
    assert_plain_close(plain_frames[1:])


# -- websocket ------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "padding",
    # chitchat's error frame (about 90 bytes) and unauthorized frame (131 bytes, or over
    # 64 KiB padded) take all three WebSocket payload length encodings (7, 16, 64 bits).
    [pytest.param(0, id="short"), pytest.param(70_000, id="long")],
)
async def test_websocket_open_message_and_close(served: str, padding: int) -> None:
    session = sid()
    chat, plain = await ws_both(served, f"/000/{session}/websocket")
    try:
        assert await chat.recv() == await plain.recv() == "o"
        # Nothing else at open, from either.
        assert await chat.nothing_unread() and await plain.nothing_unread()

        for ws in (chat, plain):
            ws.send(json.dumps([HELLO + "." * padding]))
            ws.send("")  # SockJS: empty messages are ignored
        chat_reply, plain_reply = await chat.recv(), await plain.recv()
        assert isinstance(chat_reply, str) and isinstance(plain_reply, str)
        # The same framing; chat-level content inside it (docs/transports.md).
        assert sockjs_strings(plain_reply) == [HELLO + "." * padding]
        (text,) = sockjs_strings(chat_reply)
        assert json.loads(text)["t"] == "error"
        assert await chat.nothing_unread() and await plain.nothing_unread()

        data = {"name": "ann", "padding": "." * padding}
        chat.send(json.dumps([json.dumps({"t": "auth", "v": 1, "data": data})]))
        plain.send(json.dumps([CLOSE_TRIGGER[PLAIN]]))
        assert_chitchat_close(await chat.recv_until_closed(), data)
        assert_plain_close(await plain.recv_until_closed())
        # The WebSocket itself closes the same way after the SockJS close frame.
        assert (chat.conn.close_code, chat.conn.close_reason) == (
            plain.conn.close_code, plain.conn.close_reason)
    finally:
        chat.close()
        plain.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("broken", ["[", '["unterminated', "{]"])
async def test_websocket_broken_json_closes_the_same_way(served: str, broken: str) -> None:
    chat, plain = await ws_both(served, f"/000/{sid()}/websocket")
    try:
        assert await chat.recv() == await plain.recv() == "o"
        chat.send(broken)
        plain.send(broken)
        # sockjs-tornado aborts the connection: no close frame, no WebSocket close code.
        assert await chat.recv_until_closed() == await plain.recv_until_closed() == []
        assert (chat.conn.close_code, chat.conn.close_reason) == (
            plain.conn.close_code, plain.conn.close_reason)
    finally:
        chat.close()
        plain.close()


@pytest.mark.gen_test
async def test_websocket_session_id_reuse_is_the_same(served: str) -> None:
    # WebSocket sessions are not registered: the same id may be opened twice on both.
    session = sid()
    first = await ws_both(served, f"/000/{session}/websocket")
    second = await ws_both(served, f"/000/{session}/websocket")
    try:
        for chat, plain in (first, second):
            assert await chat.recv() == await plain.recv() == "o"
    finally:
        for ws in (*first, *second):
            ws.close()


@pytest.mark.gen_test
async def test_raw_websocket_open_is_the_same(served: str) -> None:
    chat, plain = await ws_both(served, "/websocket")
    try:
        # Both accept the upgrade and send nothing at open (no "o": raw, no SockJS framing).
        assert await chat.nothing_unread() and await plain.nothing_unread()
    finally:
        chat.close()
        plain.close()


@pytest.mark.gen_test
async def test_raw_websocket_exchange_is_the_same(served: str) -> None:
    chat, plain = await ws_both(served, "/websocket")
    try:
        ping = json.dumps({"t": "ping"})
        chat.send(ping)
        plain.send(ping)
        # Raw WebSocket: each message is one bare text frame, no a[...] around it.
        assert await plain.recv() == ping
        reply = await chat.recv()
        assert isinstance(reply, str), f"the connection was closed: {reply!r}"
        assert json.loads(reply) == {"t": "pong"}
    finally:
        chat.close()
        plain.close()
