"""What SQLiteStore promises beyond the store contract: group commit, failures that leave
no hole in the seqs, the schema version, its life cycle, and erased content."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chitchat
from chitchat import jsonsafe
from chitchat.log import Draft
from chitchat.store import Appended
from chitchat.stores import _sqlite_ops as sqlite_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


@pytest.fixture
def store(db: Path, io_loop: Any) -> Iterator[chitchat.SQLiteStore]:
    made = chitchat.SQLiteStore(db)
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.close)


def draft(n: int, text: str = "hi", user: str = "ann") -> Draft:
    data = {"text": text, "n": n}
    return Draft(f"m{n}", user, data, jsonsafe.dumps(data), 1_700_000_000_000 + n)


def poison(db: Path, action: str) -> None:
    """From outside the store (as another program could): make every insert of an entry
    whose JSON says "poison" fail with RAISE(action)."""
    with sqlite3.connect(db) as connection:
        connection.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.raw LIKE '%poison%' "
            f"BEGIN SELECT RAISE({action}, 'poisoned'); END")


def cure(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TRIGGER poison")


async def outcomes(store: chitchat.SQLiteStore, drafts: list[Draft]) -> list[Any]:
    return await asyncio.gather(*[store.append("a", d) for d in drafts],
                                return_exceptions=True)


@pytest.mark.gen_test
async def test_concurrent_writes_are_committed_in_a_few_transactions(
        store: chitchat.SQLiteStore) -> None:
    before = store.commits
    await asyncio.gather(*[store.append(f"r{n % 3}", draft(n)) for n in range(200)])
    assert store.commits - before <= 20  # one per burst, not one per append


@pytest.mark.gen_test
async def test_a_write_that_fails_undoes_only_itself(store: chitchat.SQLiteStore,
                                                     db: Path) -> None:
    await store.position("a")
    poison(db, "ABORT")  # the statement fails; the transaction goes on
    results = await outcomes(store, [draft(n, "poison" if n == 4 else "ok")
                                     for n in range(10)])
    failed = results.pop(4)
    assert isinstance(failed, chitchat.BackendError)
    assert isinstance(failed.__cause__, sqlite3.IntegrityError)
    assert sorted(r.message.seq for r in results) == list(range(1, 10))
    _, entries = await store.read_after("a", 0, 100)
    assert [e.text for e in entries] == [r.message.raw for r in
                                         sorted(results, key=lambda r: r.message.seq)]


@pytest.mark.gen_test
async def test_a_write_that_rolls_the_transaction_back_fails_alone_and_leaves_no_hole(
        store: chitchat.SQLiteStore, db: Path) -> None:
    await store.position("a")
    poison(db, "ROLLBACK")  # SQLite rolls the whole transaction (the batch) back
    results = await outcomes(store, [draft(n, "poison" if n == 4 else "ok")
                                     for n in range(10)])
    assert isinstance(results.pop(4), chitchat.BackendError)
    assert sorted(r.message.seq for r in results) == list(range(1, 10))
    cure(db)
    position, entries = await store.read_after("a", 0, 100)
    assert position.last == 9
    assert [e.text for e in entries] == [r.message.raw for r in
                                         sorted(results, key=lambda r: r.message.seq)]
    assert (await store.append("a", draft(99))).message.seq == 10


@pytest.mark.gen_test
async def test_a_failed_edit_keeps_the_message_as_it_was(store: chitchat.SQLiteStore,
                                                         db: Path) -> None:
    message = (await store.append("a", draft(1))).message
    poison(db, "ABORT")
    with sqlite3.connect(db) as connection:  # the edit's entry fails after its UPDATE
        connection.execute("DROP TRIGGER poison")
        connection.execute("CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.kind = 1 "
                           "BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
    with pytest.raises(chitchat.BackendError):
        await store.edit("a", message.id, {"text": "new"}, '{"text":"new"}', 5)
    assert (await store.get("a", message.id)) == message
    assert (await store.position("a")).last == 1


@pytest.mark.gen_test
async def test_close_commits_every_write_queued_before_it(db: Path) -> None:
    store = chitchat.SQLiteStore(db)
    await store.start()
    *appended, _ = await asyncio.gather(*[store.append("a", draft(n)) for n in range(50)],
                                        store.close())
    assert [a.message.seq for a in appended] == list(range(1, 51))
    again = chitchat.SQLiteStore(db)
    await again.start()
    try:
        assert (await again.position("a")).last == 50
    finally:
        await again.close()


@pytest.mark.gen_test
async def test_calls_before_start_or_after_close_raise_a_clear_error(db: Path) -> None:
    store = chitchat.SQLiteStore(db)
    with pytest.raises(chitchat.BackendError, match="not started"):
        await store.position("a")
    await store.start()
    await store.close()
    with pytest.raises(chitchat.BackendError, match="is closed"):
        await store.append("a", draft(1))
    await store.close()  # a second close does nothing


@pytest.mark.gen_test
async def test_a_database_of_a_newer_schema_is_refused_with_a_clear_error(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {sqlite_store.SCHEMA_VERSION + 1}")
    with pytest.raises(chitchat.ConfigurationError, match="newer than this chitchat"):
        await chitchat.SQLiteStore(db).start()


@pytest.mark.gen_test
async def test_a_database_that_is_not_chitchats_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE accounts (id INTEGER)")
    with pytest.raises(chitchat.ConfigurationError, match="not chitchat's"):
        await chitchat.SQLiteStore(db).start()


@pytest.mark.gen_test
async def test_a_file_that_is_not_a_database_is_a_backend_error(db: Path) -> None:
    db.write_bytes(b"this is not a database, just a file with a name that says so\n" * 20)
    with pytest.raises(chitchat.BackendError) as caught:
        await chitchat.SQLiteStore(db).start()
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_synchronous_must_be_a_setting_sqlite_knows(db: Path) -> None:
    with pytest.raises(chitchat.ConfigurationError):
        chitchat.SQLiteStore(db, synchronous="sometimes")
    assert chitchat.SQLiteStore(db, synchronous="normal") is not None


@pytest.mark.gen_test
async def test_removed_and_edited_over_content_is_gone_from_the_file(db: Path) -> None:
    store = chitchat.SQLiteStore(db)
    await store.start()
    kept = await store.append("a", draft(1, "KEEP-kept-text"))
    removed = await store.append("a", draft(2, "GONE-removed-text"), key="k")
    big = await store.append("a", draft(3, "GONE-big-text " + "x" * 20_000))  # overflow pages
    edited = await store.append("a", draft(4, "GONE-edited-over"))
    await store.remove("a", removed.message.id)
    await store.remove("a", big.message.id)
    await store.edit("a", edited.message.id, {"text": "KEEP-new"}, '{"text":"KEEP-new"}', 9)
    await store.close()
    files = b"".join(path.read_bytes() for path in db.parent.iterdir())
    assert b"KEEP-kept-text" in files and b"KEEP-new" in files
    assert b"GONE-" not in files
    assert kept.message.raw.encode() in files


def test_the_hot_queries_use_their_indexes(store: chitchat.SQLiteStore, db: Path) -> None:
    with sqlite3.connect(db) as connection:
        def plan(sql: str, *args: Any) -> str:
            return " ".join(row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql,
                                                                  args))
        assert "USING INDEX entries_by_id" in plan(sqlite_store.BY_ID, "a", "m1")
        assert "USING COVERING INDEX live_messages" in plan(sqlite_store.UNREAD, 1, 5, "ann")


@pytest.mark.gen_test
async def test_a_helper_process_that_dies_fails_only_what_it_had_not_answered(
        store: chitchat.SQLiteStore) -> None:
    first = await store.append("a", draft(0))
    pid = store.pid
    assert pid is not None
    writes = [asyncio.ensure_future(store.append("a", draft(n))) for n in range(1, 200)]
    await asyncio.sleep(0)  # the appends are on their way
    os.kill(pid, signal.SIGKILL)
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(r, (Appended, chitchat.BackendError)) for r in results)
    assert isinstance(results[-1], chitchat.BackendError)
    acked = [first.message] + [r.message for r in results if isinstance(r, Appended)]
    # The next request starts a new process on the same file; the log has no hole and
    # holds every acknowledged message (maybe more: committed, not yet answered).
    after = await store.append("a", draft(999))
    assert store.pid != pid
    position, entries = await store.read_after("a", 0, 1000)
    assert [e.seq for e in entries] == list(range(1, position.last + 1))
    assert after.message.seq == position.last
    assert {m.raw for m in acked} <= {e.text for e in entries}


@pytest.mark.gen_test
async def test_the_helper_process_ignores_ctrl_c_sent_to_the_process_group(
        store: chitchat.SQLiteStore) -> None:
    pid = store.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    assert (await store.append("a", draft(1))).message.seq == 1
    assert store.pid == pid
