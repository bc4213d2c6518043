"""Read receipts, unread counts, edits, deletes and reactions in real Chromium: what
each person sees of the other's doing, also after being offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import FAST, Person, ServerProcess, in_room


def unread(base: str, page: Person, user: str) -> dict[str, int]:
    """``await chat.unread(user)``, through the test server's /unread."""
    response = page.page.request.get(f"{base}/unread?user={user}")
    assert response.ok
    return dict(json.loads(response.text()))


def mark_read(person: Person, room: str, seq: int) -> None:
    answer = person.js("([r, s]) => markRead(r, s)", [room, seq])
    assert answer == {"ok": True, "value": {"room": room, "seq": seq}}, answer


def wait_read(person: Person, room: str, user: str, seq: int) -> None:
    person.until("want => eventsOf('read').some(r => JSON.stringify(r) === JSON.stringify(want))",
                 {"room": room, "user": user, "seq": seq})


@pytest.mark.chat(heartbeat=1)
def test_reads_edits_and_deletes_reach_the_other_page_and_unread_counts_down(
    people: Callable[..., Person], chat_server: tuple[ServerProcess, str]
) -> None:
    base = chat_server[1]
    ann, bob = people("ann"), people("bob", **FAST)
    in_room("dev", ann, bob)
    one, two, three = (ann.send("dev", text) for text in ("one", "two", "three"))
    bob.sees("dev", "one", "two", "three")
    assert unread(base, ann, "bob")["dev"] == 3
    mark_read(bob, "dev", one["seq"])
    wait_read(ann, "dev", "bob", one["seq"])
    assert unread(base, ann, "bob")["dev"] == 2
    # While bob is offline, ann edits one message and deletes another, and bob reads
    # the next (his page sends it when it is back).
    bob.context.set_offline(True)
    edited = ann.js("([id]) => editMsg('dev', id, {text: 'two (edited)'})", [two["id"]])
    assert edited["ok"] and edited["value"]["data"] == {"text": "two (edited)"}
    assert ann.js("([id]) => removeMsg('dev', id)", [three["id"]]) == {
        "ok": True, "value": {"room": "dev", "id": three["id"]}}
    ann.shows("dev", ["one", "two (edited)"])  # the ack can come before the live frame
    bob.until("chitchat.state() === 'reconnecting'")
    bob.js("""s => { window.readLater = markRead('dev', s); }""", two["seq"])
    assert bob.shown("dev") == ["one", "two", "three"]
    bob.context.set_offline(False)
    bob.connected(times=2)
    bob.until("eventsOf('remove').length === 1")
    assert bob.shown("dev") == ["one", "two (edited)"]
    assert bob.js("rec.view.dev[1].edited") == edited["value"]["edited"]
    assert bob.events("reset") == []
    assert bob.js("readLater") == {"ok": True, "value": {"room": "dev", "seq": two["seq"]}}
    wait_read(ann, "dev", "bob", two["seq"])
    # The deleted message was never read, but it is not unread any more either.
    assert unread(base, ann, "bob")["dev"] == 0
    four = ann.send("dev", "four")
    ann.send("dev", "five")
    bob.sees("dev", "four", "five")
    assert unread(base, ann, "bob")["dev"] == 2
    # After a reload the join answer carries the same count and read position.
    bob.reload()
    info = bob.join("dev")
    assert (info["unread"], info["lastRead"]) == (2, two["seq"])
    assert info["reads"]["bob"] == two["seq"]
    assert bob.shown("dev") == ["one", "two (edited)", "four", "five"]
    mark_read(bob, "dev", four["seq"])
    wait_read(ann, "dev", "bob", four["seq"])
    assert unread(base, ann, "bob")["dev"] == 1
    assert ann.events("read") == [{"room": "dev", "user": "bob", "seq": s}
                                  for s in (one["seq"], two["seq"], four["seq"])]


def reactions_shown(person: Person, room: str, index: int) -> Any:
    return person.js("([r, i]) => rec.view[r][i].reactions || {}", [room, index])


def test_reactions_toggled_on_one_page_show_on_the_other(people: Callable[..., Person]) -> None:
    ann, bob = people("ann"), people("bob")
    in_room("dev", ann, bob)
    msg = ann.send("dev", "react to me")
    bob.sees("dev", "react to me")

    def react(person: Person, emoji: str) -> Any:
        answer = person.js("([id, e]) => reactTo('dev', id, e)", [msg["id"], emoji])
        assert answer["ok"], answer
        return answer["value"]["reactions"]

    def both_show(reactions: dict[str, list[str]]) -> None:
        for person in (ann, bob):
            person.until("want => JSON.stringify(rec.view.dev[0].reactions || {})"
                         " === JSON.stringify(want)", reactions)

    assert react(bob, "👍") == {"👍": ["bob"]}
    both_show({"👍": ["bob"]})
    assert ann.events("reactions")[-1] == {"room": "dev", "id": msg["id"],
                                           "reactions": {"👍": ["bob"]}}
    assert react(ann, "👍") == {"👍": ["bob", "ann"]}
    assert react(ann, "🎉") == {"👍": ["bob", "ann"], "🎉": ["ann"]}
    both_show({"👍": ["bob", "ann"], "🎉": ["ann"]})
    assert react(bob, "👍") == {"👍": ["ann"], "🎉": ["ann"]}  # toggled off
    both_show({"👍": ["ann"], "🎉": ["ann"]})
    assert react(ann, "🎉") == {"👍": ["ann"]}
    both_show({"👍": ["ann"]})
    # A page that comes later sees the message with its reactions as they are now.
    carol = people("carol")
    carol.join("dev")
    assert reactions_shown(carol, "dev", 0) == {"👍": ["ann"]}
    assert len(bob.events("reactions")) == len(ann.events("reactions")) == 5
