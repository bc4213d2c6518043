"""Every transport, in real Chromium, against the real server: same chat, same rules.

The browser's own network events tell which transport each page really used. Results
(median delivery time between two idle pages) are written to
``build/transport-matrix.json``; docs/transports.md quotes a run of it.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ROOT, ServerProcess, free_port

WAIT = 20_000

#: name -> (client options, the transport endpoints the page must use)
TRANSPORTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "native websocket": ({"transport": "websocket"}, {"ws"}),
    "sockjs websocket": ({"sockjs": {"transports": ["websocket"]}}, {"websocket"}),
    "xhr-streaming": ({"sockjs": {"transports": ["xhr-streaming"]}}, {"xhr_streaming"}),
    "xhr-polling": ({"sockjs": {"transports": ["xhr-polling"]}}, {"xhr"}),
    "eventsource": ({"sockjs": {"transports": ["eventsource"]}}, {"eventsource"}),
    "iframe-eventsource": (
        {"sockjs": {"transports": ["iframe-eventsource"]}}, {"iframe", "eventsource"}
    ),
    "iframe-xhr-polling": ({"sockjs": {"transports": ["iframe-xhr-polling"]}}, {"iframe", "xhr"}),
}
ENDPOINT = re.compile(
    r"/chat(?:/[^/.]+/[^/.]+/(websocket|xhr_streaming|xhr|eventsource|jsonp|htmlfile)"
    r"|/(ws)|/(iframe)[^/]*\.html)(?:\?.*)?$"
)
RESULTS = os.path.join(ROOT, "build", "transport-matrix.json")


class Page:
    """One browser page running the harness, recording which endpoints it touched."""

    def __init__(self, browser: Any, base: str, transport: str, name: str, **opts: Any) -> None:
        self.transport = transport
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.endpoints: set[str] = set()
        self.context.on("request", self._saw)
        self.page.on("websocket", self._saw)
        self.page.goto(base + "/")
        options = dict(TRANSPORTS[transport][0], **opts)
        self.page.evaluate("([n, o]) => start(n, 'secret-' + n, o)", [name, options])

    def _saw(self, thing: Any) -> None:
        match = ENDPOINT.search(thing.url)
        if match:
            self.endpoints.add(next(g for g in match.groups() if g))

    def wait(self, condition: str, timeout: int = WAIT) -> None:
        self.page.wait_for_function(condition, timeout=timeout)

    def connected(self, times: int = 1) -> None:
        self.wait(f"chitchat.state() === 'connected' && count('connect') >= {times}")

    def send(self, text: str) -> dict[str, Any]:
        result = self.page.evaluate(
            "t => chitchat.send({text: t, sent: Date.now()}).then(m => ({ok: true, msg: m}),"
            " e => ({ok: false, meta: e}))", text)
        assert result["ok"], result
        return dict(result["msg"])

    def has(self, text: str) -> None:
        self.wait(f"texts().includes({json.dumps(text)})")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[ServerProcess, str]]:
    heartbeat = getattr(request, "param", "2")
    port = free_port()
    proc = ServerProcess([sys.executable, "tests/browser/server.py", str(port)],
                         env={"CHITCHAT_HEARTBEAT": heartbeat})
    proc.start()
    yield proc, f"http://127.0.0.1:{port}"
    proc.kill()


def record(transport: str, **figures: Any) -> None:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    results = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            results = json.load(f)
    results.setdefault(transport, {}).update(figures)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_chat_works_the_same_over_each_transport(
    browser: Any, server: tuple[ServerProcess, str], transport: str
) -> None:
    proc, base = server
    ann = Page(browser, base, transport, "ann", minDelay=100, maxDelay=1000)
    ann.connected()
    bob = Page(browser, base, transport, "bob", minDelay=100, maxDelay=1000)
    bob.connected()
    # Two idle pages, one message at a time: the delivery time a person would feel.
    delays = []
    for i in range(10):
        ann.send(f"ping {i}")
        bob.has(f"ping {i}")
        delays.append(bob.page.evaluate(
            "t => { const m = rec.messages.find(m => m.data.text === t);"
            " return rec.received[m.id] - m.data.sent; }", f"ping {i}"))
    bob.send("pong")
    ann.has("pong")
    ann.page.request.post(base + "/push?user=bob", data='{"text": "for bob"}')
    bob.has("for bob")
    assert "for bob" not in ann.page.evaluate("texts()")
    # The server goes away and comes back on the same port.
    proc.kill()
    ann.wait("chitchat.state() === 'reconnecting'")
    proc.start()
    ann.connected(times=2)
    bob.connected(times=2)
    ann.send("back")
    bob.has("back")
    expected = TRANSPORTS[transport][1]
    assert ann.endpoints == expected and bob.endpoints == expected
    record(transport, chat=True, push=True, reconnect=True,
           median_delivery_ms=statistics.median(delays), deliveries=len(delays))
    ann.close()
    bob.close()


def test_users_on_different_transports_chat_with_each_other(
    browser: Any, server: tuple[ServerProcess, str]
) -> None:
    _, base = server
    pages = [Page(browser, base, t, f"user{i}") for i, t in enumerate(TRANSPORTS)]
    for page in pages:
        page.connected()
    for page in pages:
        page.send(f"hello from {page.transport}")
    for page in pages:
        for other in pages:
            page.has(f"hello from {other.transport}")
        assert page.endpoints == TRANSPORTS[page.transport][1]
    for page in pages:
        page.close()


@pytest.mark.parametrize("server", ["10"], indirect=True)  # the default heartbeat
def test_idle_connections_stay_up_and_a_dead_server_is_noticed_within_30_s(
    browser: Any, server: tuple[ServerProcess, str]
) -> None:
    proc, base = server
    # Default heartbeat settings; only the retry backoff is shortened, so that the
    # pages come back quickly after the restart in the middle of this test.
    pages = [Page(browser, base, t, f"idle{i}", maxDelay=2000) for i, t in enumerate(TRANSPORTS)]
    for page in pages:
        page.connected()
    # Idle for more than two heartbeat intervals: nobody may drop.
    with pytest.raises(Exception, match="Timeout"):
        pages[0].wait("rec.events.some(e => e[0] !== 'connect')", timeout=25_000)
    for page in pages:
        assert page.page.evaluate("rec.events.map(e => e[0])") == ["connect"], page.transport

    for how, stop in (("killed", proc.kill), ("hung", proc.pause)):
        stopped = time.monotonic()
        stop()
        noticed = {}
        for page in pages:
            page.wait("count('disconnect') >= 1", timeout=31_000)
            noticed[page.transport] = time.monotonic() - stopped
        assert max(noticed.values()) <= 30, noticed
        for transport, seconds in noticed.items():
            record(transport, **{f"noticed_{how}_s": round(seconds, 1)})
        if how == "killed":
            proc.start()
            for page in pages:
                page.connected(times=2)
                page.page.evaluate("rec.events = rec.events.filter(e => e[0] === 'connect')")
    proc.resume()
    for page in pages:
        page.close()


def test_a_transport_the_server_does_not_offer_gives_an_error_and_retries(
    browser: Any, server: tuple[ServerProcess, str]
) -> None:
    _, base = server
    page = browser.new_context().new_page()
    page.goto(base + "/")
    # jsonp-polling is disabled on the server (reflected XSS): SockJS finds no transport.
    page.evaluate("start('ann', 'secret-ann', {sockjs: {transports: ['jsonp-polling']},"
                  " minDelay: 50, maxDelay: 200})")
    page.wait_for_function("count('error') >= 3", timeout=WAIT)  # one per attempt
    error = page.evaluate("rec.events.find(e => e[0] === 'error')[1]")
    assert error["reason"], error
    assert page.evaluate("chitchat.state()") == "reconnecting"
    assert page.evaluate("count('reconnect')") == 1  # once per outage, not per attempt
    assert page.evaluate("count('connect')") == 0
    page.context.close()


def test_a_user_supplied_transport_factory_is_used_for_every_connection(
    browser: Any, server: tuple[ServerProcess, str]
) -> None:
    proc, base = server
    page = browser.new_context().new_page()
    page.goto(base + "/")
    # A factory of the page's own: plain WebSocket to the native endpoint, counting calls.
    page.evaluate("""() => {
      window.factoryCalls = 0;
      window.myTransport = function (url, cb) {
        factoryCalls += 1;
        const ws = new WebSocket(new URL(url + '/ws', location.href).href.replace(/^http/, 'ws'));
        ws.onopen = () => cb.onopen();
        ws.onmessage = e => cb.onmessage(e.data);
        ws.onclose = e => cb.onclose({code: e.code, reason: 'mine closed'});
        return {send: t => ws.send(t), close: () => ws.close()};
      };
      start('ann', 'secret-ann', {transport: myTransport, minDelay: 100, maxDelay: 500});
    }""")
    page.wait_for_function("chitchat.state() === 'connected'", timeout=WAIT)
    assert page.evaluate("sendText('via my transport')")["ok"]
    proc.kill()
    page.wait_for_function("chitchat.state() === 'reconnecting'", timeout=WAIT)
    proc.start()
    page.wait_for_function("chitchat.state() === 'connected' && count('connect') === 2",
                           timeout=WAIT)
    assert page.evaluate("factoryCalls") >= 2
    assert page.evaluate("sendText('still mine')")["ok"]
    page.context.close()
