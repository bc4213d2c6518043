"""Two pages on two chitchat processes sharing one Redis, in real Chromium: one chat.

Each process is tests/browser/server.py on the run's redis-server (its keys under a
prefix of this test's own); ann's page talks to one process, bob's to the other.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator

import pytest
import redisutil

from .conftest import Pages, Person, ServerProcess, free_port
from .test_rooms import wait_presence, wait_typing

GRACE = 1  # s: the presence grace of these servers


@pytest.fixture
def two_processes(redis_url: str) -> Iterator[list[str]]:
    """The base URLs of two chat processes on one Redis and key prefix."""
    env = {"CHITCHAT_REDIS": redis_url, "CHITCHAT_REDIS_PREFIX": redisutil.prefix(),
           "CHITCHAT_OPTIONS": json.dumps({"presence_grace": GRACE, "typing_ttl": 3})}
    servers = []
    try:
        for _ in range(2):
            port = free_port()
            server = ServerProcess([sys.executable, "tests/browser/server.py", str(port)], env)
            server.start()
            servers.append((server, f"http://127.0.0.1:{port}"))
        yield [url for _, url in servers]
    finally:
        for server, _ in servers:
            server.kill()


@pytest.fixture
def person_on(pages: Pages) -> Callable[[str, str], Person]:
    """``person_on("ann", url)``: a new browser context with the harness page of the
    process at ``url`` open and connected."""

    def _on(name: str, url: str) -> Person:
        person = Person(pages.open(url), name)
        person.start()
        return person

    return _on


def test_two_pages_on_two_processes_chat_and_see_presence_and_typing(
    two_processes: list[str], person_on: Callable[[str, str], Person]
) -> None:
    ann = person_on("ann", two_processes[0])
    bob = person_on("bob", two_processes[1])
    ann.join("dev")
    bob.join("dev")
    # Presence crosses processes: each page lists the other as a member.
    wait_presence(ann, "dev", "bob", "joined")
    ann.until("() => chitchat.members('dev').includes('bob')")
    assert sorted(bob.js("chitchat.members('dev')")) == ["ann", "bob"]
    # Messages both ways, each seen once, in one order on both pages.
    ann.send("dev", "hello from process one")
    bob.sees("dev", "hello from process one")
    bob.send("dev", "hi from process two")
    for person in (ann, bob):
        person.shows("dev", ["hello from process one", "hi from process two"])
    # Typing crosses processes, and ends on the typer's message.
    ann.js("chitchat.typing('dev')")
    wait_typing(bob, "dev", ["ann"])
    bob.js("chitchat.typing('dev')")
    wait_typing(ann, "dev", ["bob"])
    bob.send("dev", "done typing")
    wait_typing(ann, "dev", [])
    ann.sees("dev", "done typing")
    # Bob's page closes: ann, on the other process, sees him leave after the grace.
    seen = ann.js("rec.room.length")
    bob.context.close()
    wait_presence(ann, "dev", "bob", "left", seen)
    assert ann.js("chitchat.members('dev')") == ["ann"]
