"""The store contract (chitchat/store.py), written once and run on every implementation.

An implementation joins by one line in ``KINDS``: how to make a store kept at a
directory, and whether a second store on the same directory sees the first's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import chitchat
from chitchat import jsonsafe, log
from chitchat.log import Draft, Entry
from chitchat.store import Retention, Store, TooManyReactions


@dataclasses.dataclass(frozen=True)
class Kind:
    make: Callable[[Path], Store]  # a store kept under this (empty or reused) directory
    persistent: bool  # a second store on the same directory sees what the first kept


KINDS = {
    "memory": Kind(lambda path: chitchat.MemoryStore(), persistent=False),
    "sqlite": Kind(lambda path: chitchat.SQLiteStore(path / "chat.db"), persistent=True),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]  # indirect parametrization may narrow the list


@pytest.fixture
def store(kind: Kind, tmp_path: Path, io_loop: Any) -> Iterator[Store]:
    """A started store of the kind under test, kept in ``tmp_path``."""
    made = kind.make(tmp_path)
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.close)


async def started(kind: Kind, path: Path) -> Store:
    path.mkdir(parents=True, exist_ok=True)
    made = kind.make(path)
    await made.start()
    return made


@contextlib.asynccontextmanager
async def another(kind: Kind, path: Path) -> AsyncIterator[Store]:
    """Another store of ``kind`` on ``path``, closed after the block."""
    made = await started(kind, path)
    try:
        yield made
    finally:
        await made.close()


#: For the tests of what outlives a store object: only the kinds that keep data.
persistent_kinds = pytest.mark.parametrize(
    "kind", [name for name, k in KINDS.items() if k.persistent], indirect=True)


_ids = itertools.count(1)


def draft(user: str | None = "ann", data: Any = None, ts: int = 1_700_000_000_000) -> Draft:
    data = {"text": "hi"} if data is None else data
    return Draft(f"m{next(_ids)}", user, data, jsonsafe.dumps(data), ts)


async def fill(store: Store, room: str, count: int, user: str | None = "ann") -> list[Any]:
    return [(await store.append(room, draft(user, {"n": n}))).message for n in range(count)]


def seqs(entries: list[Entry]) -> list[int]:
    return [entry.seq for entry in entries]


def after_tick() -> float:
    """A time.time() strictly later than every earlier reading (clocks are coarse)."""
    start = time.time()
    while (now := time.time()) <= start:
        pass
    return now


# -- seqs and epochs ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_new_room_starts_empty_at_seq_0(store: Store) -> None:
    position = await store.position("lobby")
    assert (position.first, position.last) == (1, 0)
    assert position.epoch


@pytest.mark.gen_test
async def test_seqs_count_1_2_3_in_each_room_independently(store: Store) -> None:
    got = [(room, (await store.append(room, draft())).message.seq)
           for room in ["a", "b", "a", "a", "b"]]
    assert got == [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]
    assert (await store.position("a")).last == 3
    assert (await store.position("b")).last == 2


@pytest.mark.gen_test
async def test_a_rooms_epoch_stays_and_each_new_room_gets_its_own(store: Store) -> None:
    epoch = (await store.position("a")).epoch
    await fill(store, "a", 3)
    assert (await store.position("a")).epoch == epoch
    assert (await store.read_after("a", 0, 10))[0].epoch == epoch
    assert (await store.recent("a", 10))[0].epoch == epoch
    assert (await store.position("b")).epoch != epoch


@pytest.mark.gen_test
async def test_a_store_that_lost_its_data_gives_the_room_a_new_epoch(
        store: Store, kind: Kind, tmp_path: Path) -> None:
    await fill(store, "a", 2)
    epoch = (await store.position("a")).epoch
    async with another(kind, tmp_path / "elsewhere") as fresh:  # a new, empty database
        position = await fresh.position("a")
        assert position.epoch != epoch
        assert position.last == 0


@persistent_kinds
@pytest.mark.gen_test
async def test_an_acknowledged_append_is_seen_by_a_store_opened_after_it(
        store: Store, kind: Kind, tmp_path: Path) -> None:
    messages = await fill(store, "a", 3)
    epoch = (await store.position("a")).epoch
    async with another(kind, tmp_path) as second:  # the first one is still open
        position, entries = await second.read_after("a", 0, 10)
        assert position.epoch == epoch and position.last == 3
        assert [e.text for e in entries] == [m.raw for m in messages]
    await store.close()
    async with another(kind, tmp_path) as third:  # after a clean close: the same
        assert (await third.position("a")).epoch == epoch
        assert (await third.append("a", draft())).message.seq == 4


@persistent_kinds
@pytest.mark.gen_test
async def test_two_stores_on_the_same_data_share_one_log(
        store: Store, kind: Kind, tmp_path: Path) -> None:
    async with another(kind, tmp_path) as other:  # as another process would
        results = await asyncio.gather(*[(store, other)[n % 2].append("a", draft("ann"))
                                         for n in range(100)])
        assert sorted(r.message.seq for r in results) == list(range(1, 101))
        assert seqs((await other.read_after("a", 0, 1000))[1]) == list(range(1, 101))


@pytest.mark.gen_test
async def test_a_message_is_stored_as_the_json_log_builds(store: Store) -> None:
    data = {"text": "héllo ✓", "n": [1, 2.5, None, True], "deep": {"k": "v"}}
    appended = await store.append("a", Draft("m-json", "ann", data, jsonsafe.dumps(data), 7))
    expected = log.message_raw("m-json", "a", 1, "ann", jsonsafe.dumps(data), 7)
    assert appended.message.raw == expected and not appended.duplicate
    assert appended.message.data == data
    assert (await store.read_after("a", 0, 10))[1] == [Entry(1, expected, True)]
    assert [m.raw for m in (await store.recent("a", 10))[1]] == [expected]
    assert (await store.get("a", "m-json")) == appended.message


@pytest.mark.gen_test
async def test_a_message_without_a_user_is_kept_with_user_null(store: Store) -> None:
    message = (await store.append("a", draft(None))).message
    assert '"user":null' in message.raw
    assert (await store.get("a", message.id)) == message


@pytest.mark.gen_test
async def test_many_concurrent_appends_give_contiguous_seqs_in_each_room(store: Store) -> None:
    rooms = ["a", "b", "c"]
    results = await asyncio.gather(*[store.append(rooms[n % 3], draft(f"u{n % 7}", {"n": n}))
                                     for n in range(200)])
    for room in rooms:
        mine = [r.message for r in results if r.message.room == room]
        assert sorted(m.seq for m in mine) == list(range(1, len(mine) + 1))
        position, entries = await store.read_after(room, 0, 1000)
        assert position.last == len(mine)
        by_seq = {m.seq: m.raw for m in mine}
        assert [(e.seq, e.text) for e in entries] == sorted(by_seq.items())


# -- send keys ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_same_user_and_key_return_the_original_and_append_nothing(
        store: Store) -> None:
    first = await store.append("a", draft("ann", {"text": "once"}), key="k1")
    again = await store.append("a", draft("ann", {"text": "twice"}), key="k1")
    assert again.duplicate and not first.duplicate
    assert again.message == first.message and again.message.raw == first.message.raw
    assert (await store.position("a")).last == 1


@pytest.mark.gen_test
async def test_a_key_names_the_same_send_in_any_room(store: Store) -> None:
    first = await store.append("a", draft("ann"), key="k1")
    again = await store.append("b", draft("ann"), key="k1")
    assert again.duplicate and again.message == first.message
    assert (await store.position("b")).last == 0


@pytest.mark.gen_test
async def test_another_users_same_key_is_a_message_of_its_own(store: Store) -> None:
    ann = await store.append("a", draft("ann"), key="k1")
    bob = await store.append("a", draft("bob"), key="k1")
    assert not bob.duplicate and bob.message.seq == 2
    assert (await store.find("ann", "k1")) == ann.message
    assert (await store.find("bob", "k1")) == bob.message
    assert (await store.find("cyd", "k1")) is None
    assert (await store.find("ann", "k2")) is None


@pytest.mark.gen_test
async def test_concurrent_sends_with_one_key_store_one_message(store: Store) -> None:
    results = await asyncio.gather(*[store.append("a", draft("ann", {"n": n}), key="k1")
                                     for n in range(5)])
    assert [r.duplicate for r in results].count(False) == 1
    assert len({r.message.raw for r in results}) == 1
    assert (await store.position("a")).last == 1


@pytest.mark.gen_test
async def test_find_gives_the_keyed_message_as_it_is_now(store: Store) -> None:
    message = (await store.append("a", draft("ann"), key="k1")).message
    change = await store.edit("a", message.id, {"text": "new"}, '{"text":"new"}', 99)
    assert change is not None
    assert (await store.find("ann", "k1")) == change.message
    assert (await store.append("a", draft("ann"), key="k1")).message.raw == change.message.raw


@pytest.mark.gen_test
async def test_a_send_without_a_user_is_never_a_duplicate(store: Store) -> None:
    await store.append("a", draft(None), key="k1")
    assert not (await store.append("a", draft(None), key="k1")).duplicate


# -- edits, removals, reactions -------------------------------------------------------------


@pytest.mark.gen_test
async def test_an_edit_changes_the_message_everywhere_and_appends_its_entry(
        store: Store) -> None:
    message = (await store.append("a", draft("ann", {"text": "old"}))).message
    change = await store.edit("a", message.id, {"text": "new"}, '{"text":"new"}', 1234)
    assert change is not None
    edited = change.message
    assert edited.data == {"text": "new"} and edited.edited == 1234 and edited.seq == 1
    assert edited.raw == log.message_raw(message.id, "a", 1, "ann", '{"text":"new"}',
                                         message.ts, 1234)
    assert change.entry == Entry(2, log.edit_frame("a", 2, edited), False)
    assert (await store.get("a", message.id)) == edited
    assert [m.raw for m in (await store.recent("a", 10))[1]] == [edited.raw]
    position, entries = await store.read_after("a", 0, 10)
    assert position.last == 2
    assert entries == [Entry(1, edited.raw, True), change.entry]


@pytest.mark.gen_test
async def test_change_entries_are_composed_from_the_message_as_it_is_now(
        store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    await store.edit("a", message.id, {"text": "v2"}, '{"text":"v2"}', 10)
    await store.react("a", message.id, "bob", "👍", 20)
    last = await store.edit("a", message.id, {"text": "v3"}, '{"text":"v3"}', 20)
    assert last is not None
    now = last.message
    assert now.reactions == {"👍": ["bob"]} and now.data == {"text": "v3"}
    _, entries = await store.read_after("a", 0, 10)
    assert entries == [
        Entry(1, now.raw, True),
        Entry(2, log.edit_frame("a", 2, now), False),
        Entry(3, log.reactions_frame("a", 3, message.id, now.reactions), False),
        Entry(4, log.edit_frame("a", 4, now), False),
    ]


@pytest.mark.gen_test
async def test_a_removed_message_is_gone_from_history_but_its_entry_stays(
        store: Store) -> None:
    keep, gone = await fill(store, "a", 2)
    await store.append("a", draft("ann"), key="k-gone")
    keyed = await store.find("ann", "k-gone")
    assert keyed is not None
    change = await store.remove("a", gone.id)
    assert change is not None
    assert change.message == gone  # as it was before
    assert change.entry == Entry(4, log.remove_frame("a", 4, gone.id), False)
    assert (await store.get("a", gone.id)) is None
    assert [m.id for m in (await store.recent("a", 10))[1]] == [keep.id, keyed.id]
    position, entries = await store.read_after("a", 0, 10)
    assert position.last == 4
    assert entries == [Entry(1, keep.raw, True), Entry(3, keyed.raw, True), change.entry]
    await store.remove("a", keyed.id)
    assert (await store.find("ann", "k-gone")) is None


@pytest.mark.gen_test
async def test_changes_to_a_message_removed_later_are_left_out(store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    await store.edit("a", message.id, {"text": "v2"}, '{"text":"v2"}', 10)
    await store.react("a", message.id, "bob", "👍", 20)
    removed = await store.remove("a", message.id)
    assert removed is not None
    _, entries = await store.read_after("a", 0, 10)
    assert entries == [removed.entry]


@pytest.mark.gen_test
async def test_changes_to_unknown_or_removed_messages_give_none_and_append_nothing(
        store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    await store.position("empty")
    for room, message_id in [("a", "nope"), ("b", message.id), ("empty", message.id),
                             ("never", "nope")]:
        assert (await store.edit(room, message_id, {}, "{}", 1)) is None
        assert (await store.remove(room, message_id)) is None
        assert (await store.react(room, message_id, "bob", "👍", 20)) is None
        assert (await store.get(room, message_id)) is None
    assert (await store.remove("a", message.id)) is not None
    assert (await store.remove("a", message.id)) is None
    assert (await store.edit("a", message.id, {}, "{}", 1)) is None
    assert (await store.react("a", message.id, "bob", "👍", 20)) is None
    assert (await store.position("a")).last == 2
    assert (await store.position("b")).last == 0


@pytest.mark.gen_test
async def test_reactions_toggle_keep_their_order_and_drop_empty_emoji(store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    steps = [("ann", "👍"), ("bob", "❤"), ("cyd", "👍"), ("ann", "👍"), ("bob", "❤"),
             ("ann", "👍")]
    got = []
    for seq, (user, emoji) in enumerate(steps, start=2):
        change = await store.react("a", message.id, user, emoji, 20)
        assert change is not None
        assert change.entry == Entry(seq, log.reactions_frame(
            "a", seq, message.id, change.message.reactions), False)
        got.append(change.message.reactions)
    assert got == [{"👍": ["ann"]}, {"👍": ["ann"], "❤": ["bob"]},
                   {"👍": ["ann", "cyd"], "❤": ["bob"]}, {"👍": ["cyd"], "❤": ["bob"]},
                   {"👍": ["cyd"]}, {"👍": ["cyd", "ann"]}]
    now = await store.get("a", message.id)
    assert now is not None and now.reactions == {"👍": ["cyd", "ann"]}
    assert now.raw == log.message_raw(message.id, "a", 1, "ann", '{"text":"hi"}', message.ts,
                                      None, {"👍": ["cyd", "ann"]})


@pytest.mark.gen_test
async def test_reactions_all_taken_back_leave_a_message_without_reactions(
        store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    await store.react("a", message.id, "bob", "👍", 20)
    change = await store.react("a", message.id, "bob", "👍", 20)
    assert change is not None and change.message.reactions == {}
    assert change.entry.text == log.reactions_frame("a", 3, message.id, {})
    assert change.message.raw == message.raw  # no "reactions" field at all


@pytest.mark.gen_test
async def test_a_new_emoji_past_the_limit_raises_and_changes_nothing(store: Store) -> None:
    message = (await store.append("a", draft("ann"))).message
    await store.react("a", message.id, "bob", "1", 2)
    await store.react("a", message.id, "bob", "2", 2)
    with pytest.raises(TooManyReactions):
        await store.react("a", message.id, "bob", "3", 2)
    assert (await store.position("a")).last == 3
    assert (await store.get("a", message.id)).reactions == {"1": ["bob"], "2": ["bob"]}  # type: ignore[union-attr]
    more = await store.react("a", message.id, "cyd", "2", 2)  # an emoji already there: fine
    assert more is not None and more.message.reactions == {"1": ["bob"], "2": ["bob", "cyd"]}


# -- reading ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_recent_gives_the_newest_before_a_seq_oldest_first(store: Store) -> None:
    messages = await fill(store, "a", 10)
    await store.remove("a", messages[8].id)  # seq 11: a remove entry, not a message
    position, got = await store.recent("a", 3)
    assert position.last == 11
    assert [m.seq for m in got] == [7, 8, 10]
    assert [m.seq for m in (await store.recent("a", 3, before=8))[1]] == [5, 6, 7]
    assert [m.seq for m in (await store.recent("a", 100, before=3))[1]] == [1, 2]
    assert (await store.recent("a", 5, before=1))[1] == []
    assert (await store.recent("never", 5))[1] == []


@pytest.mark.gen_test
async def test_read_after_gives_entries_after_a_seq_up_to_a_limit(store: Store) -> None:
    messages = await fill(store, "a", 6)
    await store.remove("a", messages[2].id)  # seq 7
    assert seqs((await store.read_after("a", 0, 3))[1]) == [1, 2, 4]
    assert seqs((await store.read_after("a", 2, 3))[1]) == [4, 5, 6]
    assert seqs((await store.read_after("a", 5, 100))[1]) == [6, 7]
    position, entries = await store.read_after("a", 7, 100)
    assert entries == [] and position.last == 7


@pytest.mark.gen_test
async def test_each_read_comes_with_the_position_of_its_own_snapshot(store: Store) -> None:
    async def read() -> tuple[int, list[int], list[int]]:
        position, entries = await store.read_after("a", 0, 10_000)
        _, messages = await store.recent("a", 10_000)
        return position.last, seqs(entries), [m.seq or 0 for m in messages]

    jobs: list[Any] = []
    for n in range(60):
        jobs.append(store.append("a", draft("ann", {"n": n})))
        if n % 6 == 0:
            jobs.append(read())
    for result in await asyncio.gather(*jobs):
        if isinstance(result, tuple):
            last, entries, _ = result
            assert entries == list(range(1, last + 1))
    position, messages = await store.recent("a", 10_000)
    assert [m.seq for m in messages] == list(range(1, position.last + 1))


# -- read positions ---------------------------------------------------------------------


@pytest.mark.gen_test
async def test_read_positions_only_move_forward(store: Store) -> None:
    await fill(store, "a", 5)
    assert await store.mark_read("bob", "a", 3) == 3
    assert await store.mark_read("bob", "a", 2) == 3
    assert await store.mark_read("bob", "a", 5) == 5
    assert (await store.read_state("bob", "a", 10)).last_read == 5
    assert (await store.read_state("cyd", "a", 10)).last_read == 0


@pytest.mark.gen_test
async def test_unread_counts_what_others_sent_after_the_read_position(store: Store) -> None:
    await fill(store, "a", 2, user="ann")  # 1, 2
    await fill(store, "a", 2, user="bob")  # 3, 4
    gone = (await store.append("a", draft("ann"))).message  # 5
    await fill(store, "a", 1, user=None)  # 6: from server code, unread for everyone
    await store.remove("a", gone.id)  # 7
    await store.mark_read("bob", "a", 1)
    assert (await store.read_state("bob", "a", 10)).unread == 2  # 2, 6
    assert (await store.read_state("ann", "a", 10)).unread == 3  # 3, 4, 6
    await store.mark_read("ann", "a", 4)
    assert (await store.read_state("ann", "a", 10)).unread == 1
    assert (await store.unread("ann", ["a"])) == {"a": 1}


@pytest.mark.gen_test
async def test_reads_lists_the_highest_positions_first_up_to_the_number_asked(
        store: Store) -> None:
    await fill(store, "a", 9)
    for user, seq in [("ann", 3), ("bob", 9), ("cyd", 1), ("dan", 5)]:
        await store.mark_read(user, "a", seq)
    state = await store.read_state("ann", "a", 3)
    assert list(state.reads.items()) == [("bob", 9), ("dan", 5), ("ann", 3)]
    assert (await store.read_state("ann", "a", 0)).reads == {}
    assert (await store.read_state("ann", "a", 50)).reads == {"bob": 9, "dan": 5, "ann": 3,
                                                               "cyd": 1}


@pytest.mark.gen_test
async def test_read_state_of_a_room_nobody_wrote_to_is_empty(store: Store) -> None:
    state = await store.read_state("ann", "never", 10)
    assert (state.last_read, state.unread, state.reads) == (0, 0, {})


@pytest.mark.gen_test
async def test_unread_covers_the_rooms_asked_and_every_room_with_a_read_position(
        store: Store) -> None:
    await fill(store, "a", 3, user="bob")
    await fill(store, "b", 2, user="bob")
    await fill(store, "c", 4, user="bob")
    await store.mark_read("ann", "b", 1)
    await store.mark_read("ann", "c", 4)
    assert await store.unread("ann", ["a", "never"]) == {"a": 3, "b": 1, "c": 0, "never": 0}
    assert await store.unread("ann", []) == {"b": 1, "c": 0}
    assert await store.unread("cyd", ["a"]) == {"a": 3}


# -- retention --------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_trim_by_count_keeps_the_newest_entries_and_never_moves_last(
        store: Store) -> None:
    messages = await fill(store, "a", 10)
    await fill(store, "b", 2)
    epoch = (await store.position("a")).epoch
    await store.trim(Retention(count=4), 3600, time.time())
    position = await store.position("a")
    assert (position.epoch, position.first, position.last) == (epoch, 7, 10)
    assert seqs((await store.read_after("a", 0, 100))[1]) == [7, 8, 9, 10]
    assert [m.seq for m in (await store.recent("a", 100))[1]] == [7, 8, 9, 10]
    assert (await store.get("a", messages[5].id)) is None
    assert (await store.edit("a", messages[0].id, {}, "{}", 1)) is None
    assert ((await store.position("b")).first, (await store.position("b")).last) == (1, 2)
    assert (await store.append("a", draft())).message.seq == 11


@pytest.mark.gen_test
async def test_trim_by_age_drops_what_is_older_and_never_moves_last(store: Store) -> None:
    await fill(store, "a", 3)
    cutoff = after_tick()
    after_tick()
    await fill(store, "a", 2)
    await store.trim(Retention(count=None, age=60), 3600, cutoff + 60)
    position = await store.position("a")
    assert (position.first, position.last) == (4, 5)
    await store.trim(Retention(count=None, age=60), 3600, time.time() + 61)
    position = await store.position("a")
    assert (position.first, position.last) == (6, 5)  # nothing kept: first == last + 1
    assert (await store.read_after("a", 0, 10))[1] == []
    assert (await store.recent("a", 10))[1] == []
    assert (await store.append("a", draft())).message.seq == 6


@pytest.mark.gen_test
async def test_trim_of_a_long_log_keeps_exactly_the_newest(store: Store) -> None:
    await asyncio.gather(*[store.append("a", draft("ann", {"n": n})) for n in range(5000)])
    await asyncio.gather(*[store.append(f"r{n % 50}", draft()) for n in range(500)])
    await store.trim(Retention(count=7), 3600, time.time())
    position = await store.position("a")
    assert (position.first, position.last) == (4994, 5000)
    assert seqs((await store.read_after("a", 0, 100))[1]) == list(range(4994, 5001))
    for n in range(50):
        position = await store.position(f"r{n}")
        assert (position.first, position.last) == (4, 10)


@pytest.mark.gen_test
async def test_trim_with_no_limits_keeps_everything(store: Store) -> None:
    await fill(store, "a", 5)
    await store.trim(Retention(count=None, age=None), 3600, time.time() + 10**6)
    position = await store.position("a")
    assert (position.first, position.last) == (1, 5)


@pytest.mark.gen_test
async def test_send_keys_are_kept_for_the_window_and_dropped_after_it(store: Store) -> None:
    first = await store.append("a", draft("ann"), key="k1")
    await store.trim(Retention(count=None), dedup_window=10, now=time.time() + 5)
    assert (await store.append("a", draft("ann"), key="k1")).duplicate
    await store.trim(Retention(count=None), dedup_window=10, now=time.time() + 11)
    assert (await store.find("ann", "k1")) is None
    again = await store.append("a", draft("ann"), key="k1")
    assert not again.duplicate and again.message.seq == 2
    assert (await store.get("a", first.message.id)) == first.message  # the message stays


@pytest.mark.gen_test
async def test_many_send_keys_past_the_window_are_all_dropped(store: Store) -> None:
    await asyncio.gather(*[store.append("a", draft(f"u{n % 3}"), key=f"k{n}")
                           for n in range(4500)])
    await store.trim(Retention(count=None), dedup_window=10, now=time.time() + 11)
    assert all([await store.find(f"u{n % 3}", f"k{n}") is None for n in (0, 2500, 4499)])


# -- every store, the same bytes ----------------------------------------------------------


def test_every_store_gives_the_same_json_for_the_same_story(tmp_path: Path,
                                                             io_loop: Any) -> None:
    async def story(kind: Kind, path: Path) -> list[str]:
        texts: list[str] = []
        async with another(kind, path) as store:
            for n, user in enumerate(["ann", None, "bøb ✓"]):
                data = {"text": f"«{n}» \u2028 \"quoted\"", "list": [n, 1.5, None]}
                appended = await store.append("room ☃", Draft(f"id{n}", user, data,
                                                             jsonsafe.dumps(data), 10 + n))
                texts.append(appended.message.raw)
            changes = [await store.react("room ☃", "id0", "bøb ✓", "🎉", 20),
                       await store.edit("room ☃", "id0", {"e": "é"}, '{"e":"é"}', 99),
                       await store.react("room ☃", "id0", "ann", "👍🏽", 20),
                       await store.remove("room ☃", "id1")]
            texts += [c.entry.text + c.message.raw for c in changes if c is not None]
            texts += [e.text for e in (await store.read_after("room ☃", 0, 100))[1]]
            texts += [m.raw for m in (await store.recent("room ☃", 100))[1]]
        return texts

    results = {name: io_loop.run_sync(lambda k=kind, n=name: story(k, tmp_path / n))
               for name, kind in KINDS.items()}
    reference = results.pop("memory")
    assert len(reference) == 3 + 4 + 6 + 2
    for texts in results.values():
        assert texts == reference
