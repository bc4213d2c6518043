"""Outages in real Chromium: what a page missed comes back once and in order, what it
sent meanwhile is delivered once, a reload shows each message once, and the token
never travels in a URL.

A page is cut off with ``context.set_offline(True)``: its open connection goes silent
both ways (it is not closed), so the client notices by its heartbeat timeout; the
servers here beat every second to keep that short.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import FAST, Person, ServerProcess, in_room

HISTORY = 3  # a joining client's history in the recovery test: less than it misses


def cut_off(person: Person) -> None:
    """Take the person's network away and wait until the page knows it is lost."""
    person.context.set_offline(True)
    person.until("chitchat.state() === 'reconnecting'")


@pytest.mark.chat(history=HISTORY, heartbeat=1)
def test_missed_messages_come_back_once_and_in_order_after_an_outage(
    people: Callable[..., Person], transport_options: dict[str, Any]
) -> None:
    ann = people("ann", **transport_options)
    bob = people("bob", **FAST, **transport_options)
    in_room("dev", ann, bob)
    ann.send("main", "main before")
    ann.send("dev", "dev before")
    bob.sees("main", "main before")
    bob.sees("dev", "dev before")
    bob.context.set_offline(True)
    missed: dict[str, list[str]] = {"main": [], "dev": []}
    for i in range(2 * HISTORY):
        for room, texts in missed.items():
            texts.append(f"{room} missed {i}")
            ann.send(room, texts[-1])
    bob.until("chitchat.state() === 'reconnecting'")
    assert bob.shown("main") == ["main before"] and bob.shown("dev") == ["dev before"]
    bob.context.set_offline(False)
    bob.connected(times=2)
    for room, texts in missed.items():
        ann.send(room, f"{room} after")
        bob.sees(room, f"{room} after")
        assert bob.shown(room) == [f"{room} before", *texts, f"{room} after"]
        assert bob.shown(room) == ann.shown(room)
    assert bob.events("reset") == []
    # A newcomer gets only the last HISTORY messages: recovery, not the history, gave
    # bob all he missed.
    carol = people("carol", **transport_options)
    carol.join("dev")
    carol.sees("main", "main after")
    assert carol.shown("main") == [*missed["main"][-HISTORY + 1:], "main after"]
    assert carol.shown("dev") == [*missed["dev"][-HISTORY + 1:], "dev after"]


@pytest.mark.chat(heartbeat=1)
def test_messages_sent_during_an_outage_are_delivered_once_after_it(
    people: Callable[..., Person], transport_options: dict[str, Any]
) -> None:
    ann = people("ann", **transport_options)
    bob = people("bob", **FAST, **transport_options)
    in_room("dev", ann, bob)
    bob.context.set_offline(True)
    # The page does not know yet: this one goes out on the dead connection.
    bob.js("sendLater('dev', 'in flight')")
    assert [p["state"] for p in bob.js("chitchat.pending()")] == ["sent"]
    bob.until("chitchat.state() === 'reconnecting'")
    bob.js("sendLater('dev', 'queued')")
    pending = bob.js("chitchat.pending()")
    assert [(p["data"]["text"], p["state"]) for p in pending] == [
        ("in flight", "queued"), ("queued", "queued")]
    assert bob.shown("dev") == []
    bob.context.set_offline(False)
    bob.until("rec.sends['queued'].settled && rec.sends['in flight'].settled")
    assert bob.js("chitchat.pending()") == []
    ann.send("dev", "after")
    for person in (ann, bob):
        person.sees("dev", "after")
        assert person.shown("dev") == ["in flight", "queued", "after"]
    sends = bob.js("rec.sends")
    assert [sends[t]["ok"] for t in ("in flight", "queued")] == [True, True]
    assert [sends[t]["settled"] for t in ("in flight", "queued")] == [1, 1]
    assert [sends[t]["value"]["id"] for t in ("in flight", "queued")] == [
        m["id"] for m in ann.js("rec.view.dev")[:2]]


@pytest.mark.chat(heartbeat=1)
def test_a_resend_while_the_first_send_is_still_being_handled_is_kept_once(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str],
    transport_options: dict[str, Any]
) -> None:
    base = chat_server[1]
    ann = people("ann", **transport_options)
    bob = people("bob", **FAST, **transport_options)
    # The server has the send (its handler waits, see server.py) when bob's network
    # goes: its answer will never reach him, so he sends it again with the same cid.
    bob.js("sendLater('main', 'hold: once')")
    assert ann.page.request.get(base + "/held?count=1").ok
    cut_off(bob)
    bob.context.set_offline(False)
    bob.connected(times=2)
    # The re-send reached the handler too, while the first is still there.
    assert ann.page.request.get(base + "/held?count=2").ok
    assert ann.page.request.post(base + "/release").ok
    bob.until("rec.sends['hold: once'].settled === 1")
    ann.send("main", "after")
    for person in (ann, bob):
        person.sees("main", "after")
        assert person.shown("main") == ["hold: once", "after"]
    sent = bob.js("rec.sends['hold: once']")
    assert sent["ok"] and sent["value"]["id"] == ann.js("rec.view.main[0].id")


def test_a_reloaded_page_shows_each_message_once(people: Callable[..., Person]) -> None:
    ann, bob = people("ann"), people("bob")
    in_room("dev", ann, bob)
    for i in range(5):
        ann.send("dev", f"before {i}")
        bob.send("main", f"main {i}")
    bob.sees("dev", "before 4")
    # Ann keeps sending while bob's page reloads and joins again.
    ann.js("""n => { window.burst = (async () => {
                for (let i = 0; i < n; i++) await sendTo('dev', 'during ' + i); })(); }""", 10)
    bob.reload()
    bob.join("dev")
    ann.js("window.burst.then(() => true)")
    ann.send("dev", "after")
    bob.sees("dev", "after")
    bob.sees("main", "main 4")
    expected = [f"before {i}" for i in range(5)] + [f"during {i}" for i in range(10)] + ["after"]
    assert bob.shown("dev") == ann.shown("dev") == expected
    assert bob.shown("main") == ann.shown("main") == [f"main {i}" for i in range(5)]
    assert bob.js("rec.messages.length") == len(expected) + 5


#: name -> (the client options that make the page use that transport, the end of the
#: path of its endpoint)
URL_TRANSPORTS: dict[str, tuple[dict[str, Any], str]] = {
    "sockjs websocket": ({"sockjs": {"transports": ["websocket"]}}, "/websocket"),
    "xhr-polling": ({"sockjs": {"transports": ["xhr-polling"]}}, "/xhr"),
    "native websocket": ({"transport": "websocket"}, "/chat/ws"),
}


@pytest.mark.chat(heartbeat=1)
@pytest.mark.parametrize("transport", list(URL_TRANSPORTS))
def test_the_token_never_appears_in_a_url(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str], transport: str
) -> None:
    server = chat_server[0]
    urls: list[str] = []
    sent: list[str] = []  # request bodies and websocket frames the page sent

    def on_websocket(ws: Any) -> None:
        urls.append(ws.url)
        ws.on("framesent", lambda payload: sent.append(str(payload)))

    ann = people("ann", started=False)
    ann.context.on("request", lambda r: (urls.append(r.url), sent.append(r.post_data or "")))
    ann.page.on("websocket", on_websocket)
    options, endpoint = URL_TRANSPORTS[transport]
    ann.start(**FAST, **options)
    ann.send("main", "first")
    server.kill()
    ann.until("chitchat.state() === 'reconnecting'")
    server.start()
    ann.connected(times=2)
    ann.send("main", "second")
    # The transport was the one meant, on connect and on reconnect.
    assert sum(urlsplit(url).path.endswith(endpoint) for url in urls) >= 2, urls
    assert not [url for url in urls if ann.token in url]
    # The check can see the token: it went twice, in the auth frame's body.
    assert sum(ann.token in body for body in sent) >= 2, sent


@pytest.mark.chat(history=HISTORY, recovery_limit=HISTORY, heartbeat=1)
def test_a_page_too_far_behind_is_reset_to_the_recent_history(
    people: Callable[..., Person]
) -> None:
    ann, bob = people("ann"), people("bob", **FAST)
    ann.send("main", "old")
    bob.sees("main", "old")
    bob.context.set_offline(True)
    missed = [f"missed {i}" for i in range(HISTORY + 2)]
    for text in missed:
        ann.send("main", text)
    bob.until("chitchat.state() === 'reconnecting'")
    bob.context.set_offline(False)
    bob.connected(times=2)
    bob.sees("main", missed[-1])
    # Reset first (the view is cleared), then the recent history: nothing twice, no gap
    # inside what is shown.
    assert bob.events("reset") == [{"room": "main"}]
    assert bob.shown("main") == missed[-HISTORY:]
    ann.send("main", "after")
    bob.shows("main", [*missed[-HISTORY:], "after"])


@pytest.mark.chat(history=HISTORY)
def test_a_page_scrolls_back_through_older_messages_as_they_are_now(
    people: Callable[..., Person]
) -> None:
    ann = people("ann")
    sent = [ann.send("main", f"m{i}") for i in range(8)]
    assert ann.js("id => editMsg('main', id, {text: 'm1 (edited)'})", sent[1]["id"])["ok"]
    assert ann.js("id => removeMsg('main', id)", sent[2]["id"])["ok"]
    bob = people("bob")
    bob.sees("main", "m7")
    assert bob.shown("main") == ["m5", "m6", "m7"]

    def older(before: int) -> list[str]:
        answer = bob.js("b => historyOf('main', {before: b, limit: 2})", before)
        assert answer["ok"], answer
        return [m["data"]["text"] for m in answer["value"]]

    assert older(sent[5]["seq"]) == ["m3", "m4"]
    assert older(sent[3]["seq"]) == ["m0", "m1 (edited)"]  # m2 was deleted
    assert older(sent[0]["seq"]) == []
    # Paging back is not news: the view is unchanged.
    assert bob.shown("main") == ["m5", "m6", "m7"]
