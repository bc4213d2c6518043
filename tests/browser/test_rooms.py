"""Rooms, presence and typing in real Chromium: what each person sees, tab by tab.

One browser context is one person; two pages of one context are that person's tabs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import FAST, Person, in_room

GRACE = 3  # s: the presence grace of these tests' servers
TTL = 3  # s: the typing entries' life in these tests' servers


# The time (the page's ms) of the first `presence` event of `room` from rec.room[start]
# on in which `user` comes (`joined`) or goes (`left`), or null.
PRESENCE_AT = """([room, user, side, start]) => {
  const i = rec.room.findIndex((e, i) => i >= start && e[0] === 'presence'
                                         && e[1].room === room && e[1][side].includes(user));
  return i < 0 ? null : rec.roomAt[i];
}"""


def wait_presence(page: Person, room: str, user: str, side: str, start: int = 0) -> int:
    args = [room, user, side, start]
    page.until(f"a => ({PRESENCE_AT})(a) !== null", args)
    return int(page.js(PRESENCE_AT, args))


def test_messages_stay_in_their_room_and_reach_every_tab_of_its_members(
    people: Callable[..., Person]
) -> None:
    ann = people("ann")
    ann_tab2 = people("ann", tab_of=ann)
    bob = people("bob")
    carol = people("carol")
    for person in (ann, ann_tab2, bob):
        person.join("dev")
        person.join("ops")
    carol.join("dev")
    ann.send("dev", "ann in dev")
    bob.send("ops", "bob in ops")
    carol.send("dev", "carol in dev")
    ann_tab2.send("ops", "ann in ops")
    for person in (ann, ann_tab2, bob):
        person.sees("dev", "ann in dev", "carol in dev")
        person.sees("ops", "bob in ops", "ann in ops")
    carol.sees("dev", "ann in dev", "carol in dev")
    for person in (ann, ann_tab2, bob):
        assert person.shown("dev") == ["ann in dev", "carol in dev"]
        assert person.shown("ops") == ["bob in ops", "ann in ops"]
        assert person.shown("main") == []
    assert carol.shown("dev") == ["ann in dev", "carol in dev"]
    assert carol.js("Object.keys(rec.view).sort()") == ["dev"]
    assert carol.js("rec.messages.every(m => m.room === 'dev')")
    # Both of ann's tabs count as one member. Presence news are coalesced (one frame per
    # room per presence_interval), so they may come after the messages: wait for them.
    ann.until("chitchat.members('ops').length >= 2")
    bob.until("chitchat.members('dev').length >= 3")
    assert sorted(ann.js("chitchat.members('ops')")) == ["ann", "bob"]
    assert sorted(bob.js("chitchat.members('dev')")) == ["ann", "bob", "carol"]


@pytest.mark.chat(presence_grace=GRACE)
def test_reloading_a_page_or_closing_one_of_two_tabs_is_no_leave(
    people: Callable[..., Person]
) -> None:
    ann, bob, carol, dave = (people(name) for name in ("ann", "bob", "carol", "dave"))
    dave_tab2 = people("dave", tab_of=dave)
    for person in (ann, bob, carol, dave, dave_tab2):
        person.join("dev")
    ann.until("chitchat.members('dev').length === 4")
    seen = ann.js("rec.room.length")
    bob.reload()
    bob.join("dev")
    dave_tab2.page.close()
    # Carol goes last, for good: her `left` comes a grace period after she went, and
    # by then any `left` of bob or dave would have come (they went before her).
    carol.context.close()
    for room in ("main", "dev"):
        wait_presence(ann, room, "carol", "left")
    after = ann.js("n => rec.room.slice(n).filter(e => e[0] === 'presence').map(e => e[1])",
                   seen)
    assert after, "carol's leave was announced"
    for change in after:
        assert not {"bob", "dave"} & set(change["joined"] + change["left"]), change
    assert sorted(ann.js("chitchat.members('dev')")) == ["ann", "bob", "dave"]
    assert sorted(ann.js("chitchat.members('main')")) == ["ann", "bob", "dave"]


@pytest.mark.chat(presence_grace=GRACE)
def test_closing_a_browser_is_a_leave_after_the_grace_period_not_before(
    people: Callable[..., Person]
) -> None:
    ann, bob = people("ann"), people("bob")
    in_room("dev", ann, bob)
    wait_presence(ann, "dev", "bob", "joined")
    closed_at = ann.now()
    bob.context.close()
    for room in ("main", "dev"):
        left_at = wait_presence(ann, room, "bob", "left")
        # The server learns of the close after it happened, so this is a lower bound.
        assert GRACE * 1000 <= left_at - closed_at < (GRACE + 5) * 1000
    assert ann.js("chitchat.members('dev')") == ["ann"]


@pytest.mark.chat(presence_grace=GRACE, heartbeat=1)
def test_a_page_back_from_an_outage_longer_than_the_grace_left_and_joins_again(
    people: Callable[..., Person]
) -> None:
    ann, bob = people("ann"), people("bob", **FAST)
    in_room("dev", ann, bob)
    ann.js("chitchat.typing('dev')")
    wait_typing(bob, "dev", ["ann"])
    seen = ann.js("rec.room.length")
    bob.context.set_offline(True)
    # Bob's page hears nothing while offline: an emptied list is its own doing, as the
    # connection is lost.
    wait_typing(bob, "dev", [])
    assert bob.js("chitchat.state()") == "reconnecting"
    for room in ("main", "dev"):
        wait_presence(ann, room, "bob", "left", seen)
    carol = people("carol")
    carol.join("dev")
    seen = ann.js("rec.room.length")
    bob.context.set_offline(False)
    bob.connected(times=2)
    for room in ("main", "dev"):
        wait_presence(ann, room, "bob", "joined", seen)
        # The page back knows who is there now, and says so in a presence event.
        bob.until("r => eventsOf('presence').some(p => p.room === r"
                  " && p.members.includes('carol'))", room)
        assert sorted(bob.js("r => chitchat.members(r)", room)) == ["ann", "bob", "carol"]


# The time of the first `typing` event of `room` after index `from` whose users are
# `users`, or null.
TYPING_AT = """([room, users, from]) => {
  const i = rec.room.findIndex((e, i) => i >= from && e[0] === 'typing' && e[1].room === room
                                         && JSON.stringify(e[1].users) === JSON.stringify(users));
  return i < 0 ? null : rec.roomAt[i];
}"""


def wait_typing(page: Person, room: str, users: list[str]) -> int:
    page.until(f"a => ({TYPING_AT})(a) !== null", [room, users, 0])
    return int(page.js(TYPING_AT, [room, users, 0]))


@pytest.mark.chat(typing_ttl=TTL)
def test_typing_shows_on_the_other_page_until_the_ttl_or_the_typers_message(
    people: Callable[..., Person]
) -> None:
    ann, bob = people("ann"), people("bob")
    in_room("dev", ann, bob)
    typed_at = ann.js("() => { const t = Date.now(); chitchat.typing('main'); return t; }")
    wait_typing(bob, "main", ["ann"])
    # In dev (meanwhile), ann types and then sends: that ends her typing at once.
    typed_dev_at = ann.js("() => { const t = Date.now(); chitchat.typing('dev'); return t; }")
    wait_typing(bob, "dev", ["ann"])
    ann.send("dev", "done typing")
    stopped_at = wait_typing(bob, "dev", [])
    assert stopped_at - typed_dev_at < TTL * 1000
    bob.sees("dev", "done typing")
    # In main she only typed: the entry ends after the ttl, not before.
    expired_at = wait_typing(bob, "main", [])
    assert expired_at - typed_at >= TTL * 1000
    assert [e["users"] for e in bob.events("typing")] == [["ann"], ["ann"], [], []]
    # A typer does not see herself typing.
    assert ann.events("typing") == []
