"""Server restarts in real Chromium, over SockJS and native WebSocket: a graceful one
(SIGTERM: ``chat.stop()``) brings every page back with no error; one that kills the
server (SIGKILL) on an SQLite file loses nothing that was acknowledged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import FAST, Person, ServerProcess, in_room


@pytest.fixture
def server_env() -> dict[str, str]:
    # SO_REUSEPORT: a successor can listen on the port before the server stops.
    return {"CHITCHAT_REUSE_PORT": "1"}


def test_a_graceful_restart_brings_every_page_back_with_no_error(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str],
    transport_options: dict[str, Any]
) -> None:
    server = chat_server[0]
    ann = people("ann", **FAST, **transport_options)
    bob = people("bob", **FAST, **transport_options)
    in_room("dev", ann, bob)
    ann.send("dev", "before")
    bob.sees("dev", "before")
    # As in a rolling restart, the new process is listening on the port before the
    # old one gets SIGTERM: the pages' return (within the stop's retry window) finds it.
    successor = server.twin()
    successor.start()
    try:
        assert server.terminate() == 0
        for person in (ann, bob):
            person.connected(times=2)
            assert [name for name, _ in person.js("rec.events")] == [
                "connect", "disconnect", "reconnect", "connect"]
            assert person.events("disconnect") == person.events("reconnect") == ["restarting"]
            assert person.events("error") == []
        ann.send("dev", "after")
        bob.send("main", "bob after")
        for person in (ann, bob):
            person.sees("dev", "after")
            person.sees("main", "bob after")
            # The new process has a new in-memory store: the rooms' logs were lost, so
            # each page was told to reset its view of them.
            assert sorted(r["room"] for r in person.events("reset")) == ["dev", "main"]
            assert person.shown("dev") == ["after"]
    finally:
        successor.kill()


def test_a_stop_then_start_restart_shows_no_error_either(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str],
    transport_options: dict[str, Any]
) -> None:
    server = chat_server[0]
    # A backoff that may wait up to 4 s, so the quiet period after the 4014 (the
    # server's retry window + maxDelay) outlasts a slow start of the new process.
    ann = people("ann", minDelay=100, maxDelay=4000, **transport_options)
    ann.send("main", "before")
    # The plain way: stop, then start. The page's first attempts fail while nothing
    # listens; after the 4014 they are expected, so they are no errors.
    successor = server.twin()
    try:
        assert server.terminate() == 0
        ann.until("count('reconnect') >= 1")
        successor.start()
        ann.connected(times=2)
        assert person_events(ann) == ["connect", "disconnect", "reconnect", "connect"]
        assert ann.events("error") == []
        ann.send("main", "after")
        ann.sees("main", "after")
    finally:
        successor.kill()


def person_events(person: Person) -> list[str]:
    return [name for name, _ in person.js("rec.events")]


@pytest.mark.sqlite
def test_a_server_killed_and_restarted_on_its_sqlite_file_loses_nothing_acknowledged(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str],
    transport_options: dict[str, Any]
) -> None:
    server = chat_server[0]
    ann = people("ann", **FAST, **transport_options)
    bob = people("bob", **FAST, **transport_options)
    in_room("dev", ann, bob)
    conversation = {"main": ["hello", "hi"], "dev": ["dev 1", "dev 2"]}
    ann.send("main", "hello")
    bob.send("main", "hi")
    ann.send("dev", "dev 1")
    bob.send("dev", "dev 2")
    edited = ann.send("dev", "dev 3")
    removed = bob.send("dev", "dev 4")
    assert ann.js("id => editMsg('dev', id, {text: 'dev 3 (edited)'})", edited["id"])["ok"]
    assert bob.js("id => removeMsg('dev', id)", removed["id"])["ok"]
    conversation["dev"].append("dev 3 (edited)")
    # A burst, and the kill right after its last answer: an ack means it is on disk.
    ann.js("""async () => { for (let i = 0; i < 5; i++) {
                const a = await sendTo('main', 'burst ' + i); if (!a.ok) throw a; } }""")
    conversation["main"] += [f"burst {i}" for i in range(5)]
    server.kill()
    for person in (ann, bob):
        person.until("chitchat.state() === 'reconnecting'")
    bob.js("sendLater('dev', 'sent while down')")
    conversation["dev"].append("sent while down")
    server.start()
    for person in (ann, bob):
        person.connected(times=2)
    bob.until("rec.sends['sent while down'].settled === 1")
    ann.send("main", "after")
    conversation["main"].append("after")
    for person in (ann, bob):
        for room, texts in conversation.items():
            person.shows(room, texts)
        assert person.events("reset") == []
    # A page that comes now is given the same conversation from the file.
    carol = people("carol", **transport_options)
    carol.join("dev")
    for room, texts in conversation.items():
        carol.shows(room, texts)
