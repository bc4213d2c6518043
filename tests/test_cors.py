"""CORS on the SockJS HTTP routes: only pages the chat allows may read its answers.

Every request goes over a real socket to the real server, written and read by hand
(``raw_request``) so that a streaming answer can be judged by its headers alone. A page
at the serving host, or at an origin in ``allowed_origins``, gets sockjs-tornado's CORS
headers; a page anywhere else gets none, and its preflight a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

ALLOWED = "https://app.example"
FOREIGN = ["http://evil.example", "http://127.0.0.1:1", "null", "https://app.example.evil.example"]
TIMEOUT = 5.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes  # empty for a streaming answer (only its headers are read)

    def cors(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.startswith("access-control-")}


async def raw_request(port: int, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> Answer:
    """One HTTP/1.1 request on its own connection. A body is read when the answer has a
    Content-Length; a streaming (chunked) answer is cut off after its headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
        fields: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        content = b""
        if "content-length" in fields:
            content = await asyncio.wait_for(
                reader.readexactly(int(fields["content-length"])), TIMEOUT)
        return Answer(int(status_line.split()[1]), fields, content)
    finally:
        writer.close()
        # Wait for the close, or the socket may outlive the test's loop (a ResourceWarning).
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def sid() -> str:
    return secrets.token_hex(4)


#: Every SockJS route that answers with CORS headers: (method, path, body). ``{s}`` is a
#: fresh session id; xhr_send is sent to a session opened just before (see ``ask``).
ROUTES = [
    pytest.param("GET", "/chat/info", b"", id="info"),
    pytest.param("POST", "/chat/000/{s}/xhr", b"", id="xhr"),
    pytest.param("POST", "/chat/000/{s}/xhr_send", b'["x"]', id="xhr_send"),
    pytest.param("POST", "/chat/000/{s}/xhr_streaming", b"", id="xhr_streaming"),
    pytest.param("GET", "/chat/000/{s}/eventsource", b"", id="eventsource"),
    pytest.param("POST", "/chat/chunking_test", b"", id="chunking_test"),
]
PREFLIGHTED = ["/chat/info", "/chat/000/{s}/xhr", "/chat/000/{s}/xhr_send",
               "/chat/000/{s}/xhr_streaming", "/chat/chunking_test"]


async def ask(port: int, method: str, path: str, body: bytes, origin: str | None,
              **extra: str) -> Answer:
    session = sid()
    if path.endswith("/xhr_send") and method == "POST":
        # A send needs an open session (opened without Origin: only the send is judged).
        opened = await raw_request(port, "POST", f"/chat/000/{session}/xhr", {})
        assert opened.body == b"o\n"
    headers = {"Origin": origin} if origin is not None else {}
    return await raw_request(port, method, path.format(s=session), {**headers, **extra}, body)


PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


@pytest.mark.gen_test
@pytest.mark.chat(allowed_origins=[ALLOWED])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("who", ["serving host", "allowed origin"])
async def test_an_allowed_page_may_read_every_sockjs_answer(
    http_server: Any, http_port: int, method: str, path: str, body: bytes, who: str
) -> None:
    origin = f"http://127.0.0.1:{http_port}" if who == "serving host" else ALLOWED
    answer = await ask(http_port, method, path, body, origin)
    assert answer.status in (200, 204)
    assert answer.cors() == {"access-control-allow-origin": origin,
                             "access-control-allow-credentials": "true"}


@pytest.mark.gen_test
@pytest.mark.chat(allowed_origins=[ALLOWED])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("origin", FOREIGN)
async def test_a_foreign_page_gets_no_cors_headers_on_any_sockjs_route(
    http_server: Any, http_port: int, method: str, path: str, body: bytes, origin: str
) -> None:
    answer = await ask(http_port, method, path, body, origin)
    # Still served (a session it opens is refused by the chat, error 4004), but the
    # browser will not let the page read it.
    assert answer.status in (200, 204)
    assert answer.cors() == {}


@pytest.mark.gen_test
@pytest.mark.chat(allowed_origins=[ALLOWED])
@pytest.mark.parametrize("path", PREFLIGHTED)
async def test_preflights_of_allowed_pages_pass_and_of_foreign_pages_get_403(
    http_server: Any, http_port: int, path: str
) -> None:
    for origin in (f"http://127.0.0.1:{http_port}", ALLOWED):
        answer = await ask(http_port, "OPTIONS", path, b"", origin, **PREFLIGHT)
        assert answer.status == 204
        cors = answer.cors()
        assert cors["access-control-allow-origin"] == origin
        assert cors["access-control-allow-credentials"] == "true"
        assert cors["access-control-allow-headers"] == "content-type"
        methods = "OPTIONS, GET" if path.endswith("/info") else "OPTIONS, POST"
        assert cors["access-control-allow-methods"] == methods
    for origin in FOREIGN:
        answer = await ask(http_port, "OPTIONS", path, b"", origin, **PREFLIGHT)
        assert (answer.status, answer.cors(), answer.body) == (403, {}, b"")
        # Nor sockjs-tornado's year-long caching of the preflight.
        assert "expires" not in answer.headers
        assert "public" not in answer.headers.get("cache-control", "")


@pytest.mark.gen_test
@pytest.mark.chat(allowed_origins="*")
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_allowed_origins_star_lets_every_page_read(
    http_server: Any, http_port: int, method: str, path: str, body: bytes
) -> None:
    for origin in FOREIGN:
        answer = await ask(http_port, method, path, body, origin)
        assert answer.cors()["access-control-allow-origin"] == origin
    preflight = await ask(http_port, "OPTIONS", "/chat/info", b"", "null",
                          **PREFLIGHT)
    assert preflight.status == 204 and preflight.cors()["access-control-allow-origin"] == "null"


@pytest.mark.gen_test
async def test_a_foreign_xhr_session_is_still_refused_by_the_chat(
    http_server: Any, http_port: int
) -> None:
    # Without CORS the page cannot read this, but a non-browser client can: the chat
    # itself refuses the connection, as on every transport.
    session = sid()
    origin = {"Origin": "http://evil.example"}
    opened = await raw_request(http_port, "POST", f"/chat/000/{session}/xhr", origin)
    assert opened.body == b"o\n" and opened.cors() == {}
    refused = await raw_request(http_port, "POST", f"/chat/000/{session}/xhr", origin)
    assert b"4004" in refused.body and refused.cors() == {}


@pytest.mark.gen_test
async def test_refused_origins_are_logged_once_a_minute_with_a_count(
    http_server: Any, http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chitchat.transports"):
        for _ in range(3):
            await ask(http_port, "GET", "/chat/info", b"", "http://evil.example")
    refusals = [r for r in caplog.records if "no CORS headers" in r.getMessage()]
    assert len(refusals) == 1
    assert "'http://evil.example'" in refusals[0].getMessage()
