"""The chat, end to end, in real Chromium: what a person using it would see."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from .conftest import ServerProcess, free_port

WAIT = 15_000  # ms: the longest any single step may take


def login(page: Any, name: str, token: str | None = None, **options: Any) -> None:
    page.evaluate("([n, t, o]) => start(n, t, o)", [name, token or "secret-" + name, options])


def connected(page: Any) -> None:
    page.wait_for_function("chitchat.state() === 'connected'", timeout=WAIT)


def wait_texts(page: Any, *texts: str) -> None:
    page.wait_for_function(
        "want => want.every(t => texts().includes(t))", arg=list(texts), timeout=WAIT
    )


def test_two_users_chat_both_ways(new_user: Any) -> None:
    ann, bob = new_user(), new_user()
    login(ann, "ann")
    connected(ann)
    login(bob, "bob")
    connected(bob)
    assert ann.evaluate("rec.events[0]") == ["connect", {"user": "ann", "meta": {"online": []}}]
    assert bob.evaluate("rec.events[0]") == ["connect", {"user": "bob",
                                                         "meta": {"online": ["ann"]}}]
    sent = ann.evaluate("sendText('hi bob')")
    assert sent["ok"] and sent["msg"]["user"] == "ann"
    wait_texts(bob, "hi bob")
    assert bob.evaluate("rec.messages[0]") == sent["msg"]
    assert bob.evaluate("sendText('hi ann')")["ok"]
    wait_texts(ann, "hi bob", "hi ann")
    wait_texts(bob, "hi ann")
    assert ann.evaluate("texts()") == bob.evaluate("texts()") == ["hi bob", "hi ann"]


def test_rejected_message_reaches_no_one_and_rejects_the_promise(new_user: Any) -> None:
    ann, bob = new_user(), new_user()
    login(ann, "ann"), login(bob, "bob")
    connected(ann), connected(bob)
    answer = ann.evaluate("sendText('x'.repeat(501))")
    assert answer == {"ok": False, "meta": {"reason": "too long"}}
    assert ann.evaluate("sendText('after')")["ok"]
    wait_texts(bob, "after")
    wait_texts(ann, "after")
    assert bob.evaluate("texts()") == ann.evaluate("texts()") == ["after"]


def test_transformed_message_arrives_transformed(new_user: Any) -> None:
    ann, bob = new_user(), new_user()
    login(ann, "ann"), login(bob, "bob")
    connected(ann), connected(bob)
    answer = ann.evaluate("sendText('upper:quiet please')")
    assert answer["msg"]["data"] == {"text": "QUIET PLEASE"}
    wait_texts(bob, "QUIET PLEASE")


def test_push_reaches_every_tab_of_its_user_and_no_one_else(
    new_user: Any, chat_server: tuple[ServerProcess, str]
) -> None:
    ann_tab1 = new_user()
    ann_tab2 = new_user(context=ann_tab1.context)
    bob = new_user()
    for page, name in ((ann_tab1, "ann"), (ann_tab2, "ann"), (bob, "bob")):
        login(page, name)
        connected(page)
    response = ann_tab1.request.post(chat_server[1] + "/push?user=ann",
                                     data='{"text": "you have mail"}')
    assert response.ok
    for tab in (ann_tab1, ann_tab2):
        wait_texts(tab, "you have mail")
        assert tab.evaluate("rec.messages[0].user") is None
    # bob's next message is his own: the push never reached him.
    assert bob.evaluate("sendText('bob here')")["ok"]
    wait_texts(bob, "bob here")
    assert bob.evaluate("texts()") == ["bob here"]


def test_bad_token_gives_unauthorized_with_meta_and_no_retry(new_user: Any) -> None:
    page = new_user()
    attempts: list[str] = []
    page.on("request", lambda r: attempts.append(r.url) if "/chat/" in r.url else None)
    page.on("websocket", lambda ws: attempts.append(ws.url))
    login(page, "ann", "wrong", minDelay=50, maxDelay=100)
    page.wait_for_function("count('unauthorized') === 1", timeout=WAIT)
    assert page.evaluate("rec.events.find(e => e[0] === 'unauthorized')[1]") == {"invalid": True}
    assert page.evaluate("chitchat.state()") == "disconnected"
    seen = len(attempts)
    # With 50-100 ms backoff, any retry loop would open a new connection well within
    # this window; nothing may happen.
    with pytest.raises(Exception, match="Timeout"):
        page.wait_for_event("websocket", timeout=1500)
    assert len(attempts) == seen
    assert page.evaluate("count('reconnect')") == 0
    assert page.evaluate("sendText('let me in')") == {"ok": False,
                                                       "meta": {"error": "not_connected"}}


def test_server_restart_reconnects_and_the_page_can_send_again(
    new_user: Any, chat_server: tuple[ServerProcess, str]
) -> None:
    server, _ = chat_server
    ann, bob = new_user(), new_user()
    login(ann, "ann", minDelay=100, maxDelay=1000), login(bob, "bob", minDelay=100, maxDelay=1000)
    connected(ann), connected(bob)
    server.kill()
    ann.wait_for_function("chitchat.state() === 'reconnecting'", timeout=WAIT)
    server.start()
    connected(ann), connected(bob)
    assert ann.evaluate("count('disconnect')") == 1
    assert ann.evaluate("count('reconnect')") == 1
    assert ann.evaluate("count('connect')") == 2
    assert ann.evaluate("rec.states").count("reconnecting") >= 1
    assert ann.evaluate("sendText('back again')")["ok"]
    wait_texts(bob, "back again")


def test_a_page_that_connects_later_sees_the_history(new_user: Any) -> None:
    ann = new_user()
    login(ann, "ann")
    connected(ann)
    for text in ("one", "two", "three"):
        assert ann.evaluate("t => sendText(t)", text)["ok"]
    late = new_user()
    login(late, "late")
    connected(late)
    wait_texts(late, "one", "two", "three")
    assert late.evaluate("texts()") == ["one", "two", "three"]


@pytest.mark.parametrize(
    "options",
    [{}, {"sockjs": {"transports": ["xhr-polling"]}}, {"transport": "websocket"}],
    ids=["sockjs-websocket", "sockjs-xhr-polling", "native-websocket"],
)
def test_a_page_from_another_origin_cannot_open_a_chat_connection(
    browser: Any, options: dict[str, Any]
) -> None:
    chat_port, other_port = free_port(), free_port()
    server = ServerProcess([sys.executable, "tests/browser/server.py", str(chat_port),
                            str(other_port)])
    server.start()
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{other_port}/")  # same host, another port
        login(page, "ann", minDelay=50, maxDelay=100, **options)
        page.wait_for_function("count('error') >= 1", timeout=WAIT)
        if "transport" not in options:
            # SockJS: the page may not even read /info (no CORS headers for a foreign
            # origin: tests/browser/test_cors.py), so sockjs-client gives up (1002) on
            # every attempt before the chat could answer 4004.
            error = page.evaluate("rec.events.find(e => e[0] === 'error')[1]")
            assert error["code"] == 1002
        # Native WebSocket: the handshake is refused (403) on every attempt.
        assert page.evaluate("count('connect')") == 0
        page.context.close()
    finally:
        server.kill()


def test_a_reconnect_to_the_same_server_never_shows_a_message_twice(browser: Any) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, "tests/browser/server.py", str(port)],
                           env={"CHITCHAT_HEARTBEAT": "1"})
    server.start()
    try:
        pages = []
        for name in ("ann", "bob"):
            page = browser.new_context().new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            login(page, name, minDelay=100, maxDelay=500)
            connected(page)
            pages.append(page)
        ann, bob = pages
        for text in ("one", "two", "three"):
            assert ann.evaluate("t => sendText(t)", text)["ok"]
        wait_texts(bob, "one", "two", "three")
        # Hang the server past the heartbeat: the pages give up on the connection and,
        # once it answers again, reconnect to the same server, which resends history.
        server.pause()
        bob.wait_for_function("count('disconnect') === 1", timeout=WAIT)
        server.resume()
        for page in pages:  # both gave up during the pause; both come back
            page.wait_for_function(
                "chitchat.state() === 'connected' && count('connect') === 2", timeout=WAIT)
        assert ann.evaluate("sendText('four')")["ok"]
        wait_texts(bob, "four")
        assert bob.evaluate("texts()") == ["one", "two", "three", "four"]
        for page in pages:
            page.context.close()
    finally:
        server.kill()
