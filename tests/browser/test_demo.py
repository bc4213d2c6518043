"""The demo page, end to end in real Chromium: two browser contexts are two people.

Everything is driven the way a person uses the page (typing, clicking, scrolling) and
checked on what the page shows. The page runs under the demo's Content-Security-Policy,
so waits are on selectors and locators, never on JavaScript expressions.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import ServerProcess, free_port

WAIT = 15_000  # ms: the longest any single step may take
BACK = 30_000  # ms: for a page to find a restarted server (its backoff grows while it is down)
XSS = "<img src=x onerror=alert(1)>"

StartDemo = Callable[..., tuple[ServerProcess, str]]
OpenPage = Callable[..., Any]


@pytest.fixture
def start_demo() -> Iterator[StartDemo]:
    """``start_demo(*flags)``: the demo in a child process (``demo/app.py`` with
    ``flags``, in memory unless they say ``--db``); returns (process, url)."""
    servers: list[ServerProcess] = []

    def _start(*flags: str) -> tuple[ServerProcess, str]:
        port = free_port()
        kept = [] if "--db" in flags else ["--memory"]
        server = ServerProcess([sys.executable, "demo/app.py", "--port", str(port), *kept,
                                *flags])
        server.start()
        servers.append(server)
        return server, f"http://127.0.0.1:{port}"

    yield _start
    for server in servers:
        server.kill()


@pytest.fixture
def open_page(browser: Any) -> Iterator[OpenPage]:
    """``open_page(url, name=None, context=None, viewport=None)``: a new tab on the demo,
    in a new browser context (a new person) unless ``context`` is given, logged in as
    ``name`` if given. At the end no page may have had an uncaught error or a dialog."""
    contexts: list[Any] = []
    errors: list[str] = []
    dialogs: list[str] = []

    def _open(url: str, name: str | None = None, context: Any = None,
              viewport: dict[str, int] | None = None) -> Any:
        if context is None:
            context = browser.new_context(viewport=viewport or {"width": 1200, "height": 800})
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url + "/")
        if name is not None:
            login(page, name)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
    assert dialogs == [], f"dialogs opened: {dialogs}"


def login(page: Any, name: str) -> None:
    page.fill("#name", name)
    page.click("#login button")
    connected(page)
    expect(page.locator("#room-title")).to_have_text("main", timeout=WAIT)


def connected(page: Any, timeout: float = WAIT) -> None:
    expect(page.locator("#state")).to_have_attribute("data-state", "connected", timeout=timeout)


def say(page: Any, text: str) -> None:
    """Type ``text`` in the composer, send it, and wait until the server has it."""
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(message(page, text)).to_have_count(1, timeout=WAIT)
    expect(page.locator("#pending li")).to_have_count(0, timeout=WAIT)


def message(page: Any, text: str) -> Any:
    """The shown room's message(s) whose text is exactly ``text``."""
    exact = re.compile("^" + re.escape(text) + "$")
    return page.locator("#messages li.msg").filter(has=page.locator(".text", has_text=exact))


def texts(page: Any) -> list[str]:
    return page.locator("#messages li.msg .text").all_text_contents()


def expect_texts(page: Any, wanted: list[str]) -> None:
    expect(page.locator("#messages li.msg .text")).to_have_text(wanted, timeout=WAIT)


def room_item(page: Any, room: str) -> Any:
    return page.locator(f'#rooms li[data-room="{room}"]')


def join(page: Any, room: str) -> None:
    page.fill("#room-name", room)
    page.press("#room-name", "Enter")
    expect(page.locator("#room-title")).to_have_text(room, timeout=WAIT)


def open_room(page: Any, room: str) -> None:
    room_item(page, room).locator(".open").click()
    expect(page.locator("#room-title")).to_have_text(room, timeout=WAIT)


def members(page: Any) -> Any:
    return page.locator("#members li")


# -- rooms ----------------------------------------------------------------------------


def test_rooms_keep_their_messages_apart_and_count_what_is_unread(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    join(ann, "dev")
    expect(room_item(ann, "dev")).to_be_visible()
    join(bob, "dev")
    say(ann, "only in dev")
    expect_texts(bob, ["only in dev"])

    # Bob looks at dev while Ann writes in main: main gets a count, dev shows nothing new.
    open_room(ann, "main")
    expect(message(ann, "only in dev")).to_have_count(0)
    say(ann, "news in main")
    say(ann, "more news")
    expect(room_item(bob, "main").locator(".unread")).to_have_text("2", timeout=WAIT)
    assert texts(bob) == ["only in dev"]
    expect(room_item(bob, "dev").locator(".unread")).to_have_count(0)

    # Opening main reads it: the count goes away.
    open_room(bob, "main")
    expect_texts(bob, ["news in main", "more news"])
    expect(room_item(bob, "main").locator(".unread")).to_have_count(0, timeout=WAIT)

    # Bob closes the page; Ann writes in dev. Back again, the page joins dev by itself
    # (it remembers his rooms) and the join's answer says how much he missed there.
    bob_context = bob.context
    bob.close()
    open_room(ann, "dev")
    for text in ("one", "two", "three"):
        say(ann, text)
    bob = open_page(url, "Bob", context=bob_context)
    expect(room_item(bob, "dev").locator(".unread")).to_have_text("3", timeout=WAIT)
    expect(room_item(bob, "main").locator(".unread")).to_have_count(0)
    open_room(bob, "dev")
    expect_texts(bob, ["only in dev", "one", "two", "three"])
    expect(room_item(bob, "dev").locator(".unread")).to_have_count(0, timeout=WAIT)


def test_a_room_name_outside_the_demo_rule_is_refused_with_the_reason(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann = open_page(url, "Ann")
    ann.fill("#room-name", "no/slashes!")
    ann.press("#room-name", "Enter")
    expect(ann.locator("#room-error")).to_have_text(
        'Could not join "no/slashes!": Room names are 1 to 40 letters, digits, spaces or '
        "dashes.", timeout=WAIT)
    expect(room_item(ann, "no/slashes!")).to_have_count(0)
    expect(ann.locator("#rooms li")).to_have_count(1)
    expect(ann.locator("#room-title")).to_have_text("main")


def test_members_come_and_go_live(start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    expect(members(ann)).to_have_text(["Ann", "Bob"], timeout=WAIT)
    join(ann, "dev")
    expect(members(ann)).to_have_text(["Ann"], timeout=WAIT)
    join(bob, "dev")
    expect(members(ann)).to_have_text(["Ann", "Bob"], timeout=WAIT)
    expect(members(bob)).to_have_text(["Ann", "Bob"], timeout=WAIT)
    room_item(bob, "dev").locator(".leave").click()
    expect(bob.locator("#room-title")).to_have_text("main", timeout=WAIT)
    expect(room_item(bob, "dev")).to_have_count(0)
    expect(members(ann)).to_have_text(["Ann"], timeout=WAIT)


# -- typing ---------------------------------------------------------------------------

TYPING_TTL = 4.0  # s, the demo's --typing-ttl in the typing test


def keep_typing_until_seen(typist: Any, watcher: Any, line: str) -> None:
    """Type letter after letter (as a person does) until ``watcher`` shows ``line``.
    (The client sends one typing frame per room every 2 s at most.)"""
    deadline = time.monotonic() + WAIT / 1000
    while True:
        typist.press("#text", "a")
        try:
            expect(watcher.locator("#typing")).to_have_text(line, timeout=300)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_typing_shows_while_ann_types_and_goes_when_she_sends_or_stops(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo("--typing-ttl", str(TYPING_TTL))
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    expect(bob.locator("#typing")).to_have_text("")
    keep_typing_until_seen(ann, bob, "Ann is typing...")
    expect(ann.locator("#typing")).to_have_text("")  # her own typing is not shown to her
    ann.press("#text", "Enter")
    # Gone with the message, well before the entry would expire on its own.
    expect(bob.locator("#typing")).to_have_text("", timeout=TYPING_TTL * 1000 / 2)
    expect(bob.locator("#messages li.msg .who")).to_have_text(["Ann"])

    keep_typing_until_seen(ann, bob, "Ann is typing...")
    began = time.monotonic()
    # She stops without sending: it goes by itself after the TTL.
    expect(bob.locator("#typing")).to_have_text("", timeout=WAIT)
    assert time.monotonic() - began > TYPING_TTL / 2
    assert ann.input_value("#text")  # still unsent


# -- read receipts --------------------------------------------------------------------


def test_ann_sees_that_bob_read_her_last_message(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    say(ann, "did you read this?")
    expect(message(bob, "did you read this?")).to_have_count(1, timeout=WAIT)
    expect(ann.locator("#seen")).to_have_text("seen by Bob", timeout=WAIT)
    expect(bob.locator("#seen")).to_be_hidden()  # Ann wrote it: nothing for Bob to see there

    # Bob goes elsewhere: Ann's next message is not seen until he comes back.
    join(bob, "dev")
    say(ann, "and this?")
    expect(ann.locator("#seen")).to_be_hidden(timeout=WAIT)
    expect(room_item(bob, "main").locator(".unread")).to_have_text("1", timeout=WAIT)
    open_room(bob, "main")
    expect(ann.locator("#seen")).to_have_text("seen by Bob", timeout=WAIT)

    # A new tab of Ann's knows it from the room's answer, with no new read.
    ann2 = open_page(url, "Ann", context=ann.context)
    expect(ann2.locator("#seen")).to_have_text("seen by Bob", timeout=WAIT)


# -- edits, deletes, reactions --------------------------------------------------------


def test_ann_edits_and_deletes_her_messages_and_bob_sees_it_live(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    say(ann, "frist")
    say(ann, "oops, wrong room")
    expect_texts(bob, ["frist", "oops, wrong room"])

    first = message(ann, "frist")
    first.hover()
    first.locator("button.edit").click()
    ann.locator("#messages .edit-text").fill("first")
    ann.locator("#messages .edit-text").press("Enter")
    expect(message(ann, "first").locator(".edited")).to_have_text("(edited)", timeout=WAIT)
    expect(message(bob, "first").locator(".edited")).to_have_text("(edited)", timeout=WAIT)

    second = message(ann, "oops, wrong room")
    second.hover()
    second.locator("button.delete").click()
    second.locator("button.confirm-yes").click()
    expect_texts(ann, ["first"])
    expect_texts(bob, ["first"])

    # Bob gets no controls on Ann's message, and the server refuses if he forces it.
    say(bob, "mine")
    expect(message(bob, "first").locator("button.edit, button.delete")).to_have_count(0)
    expect(message(bob, "mine").locator("button.edit")).to_have_count(1)
    expect(message(bob, "mine").locator("button.delete")).to_have_count(1)
    msg_id = message(bob, "first").get_attribute("data-id")
    forced = bob.evaluate(
        """id => Promise.all([
             chitchat.edit('main', id, {text: 'hijacked'}).then(() => 'accepted', e => e),
             chitchat.remove('main', id).then(() => 'accepted', e => e)])""", msg_id)
    assert forced == [{"reason": "You can only edit your own messages."},
                      {"reason": "You can only delete your own messages."}]
    expect_texts(ann, ["first", "mine"])
    expect(message(ann, "first").locator(".edited")).to_have_text("(edited)")


def test_a_reaction_toggled_by_bob_shows_on_anns_page_with_count_and_names(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    say(ann, "lunch?")
    target = message(bob, "lunch?")
    target.hover()
    target.locator('.actions button[data-emoji="👍"]').click()
    chip = message(ann, "lunch?").locator('.reaction[data-emoji="👍"]')
    expect(chip).to_have_text("👍 1", timeout=WAIT)
    expect(chip).to_have_attribute("title", "Bob")

    chip.click()  # Ann adds hers with the chip
    bob_chip = message(bob, "lunch?").locator('.reaction[data-emoji="👍"]')
    expect(bob_chip).to_have_text("👍 2", timeout=WAIT)
    expect(bob_chip).to_have_attribute("title", "Bob, Ann")
    expect(chip).to_have_class(re.compile(r"\bmine\b"), timeout=WAIT)

    target.hover()
    target.locator('.actions button[data-emoji="👍"]').click()  # Bob takes his back
    expect(chip).to_have_text("👍 1", timeout=WAIT)
    expect(chip).to_have_attribute("title", "Ann")


# -- history --------------------------------------------------------------------------


def test_scrolling_up_loads_older_messages_page_by_page(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo("--history", "5")
    ann = open_page(url, "Ann")
    sent = [f"message {i}" for i in range(1, 29)]
    ann.evaluate("""async texts => {
        for (const text of texts) await chitchat.send({text}, {room: 'main'});
    }""", sent)
    # A short window, so that the first five messages overflow it and nothing loads
    # until Bob scrolls.
    bob = open_page(url, "Bob", viewport={"width": 1000, "height": 360})
    expect_texts(bob, sent[-5:])
    box = bob.locator("#scroll")
    assert box.evaluate("el => el.scrollHeight > el.clientHeight")
    box.hover()
    bob.mouse.wheel(0, -5000)
    expect_texts(bob, sent[-25:])  # one page (20) more
    bob.mouse.wheel(0, -10000)
    expect_texts(bob, sent)
    expect(bob.locator("#older")).to_be_hidden()


# -- the connection -------------------------------------------------------------------


def test_sends_while_reconnecting_wait_as_pending_and_go_out_after_a_restart(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    server, url = start_demo()  # in memory: a restart loses the log
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    say(ann, "before the restart")
    expect_texts(bob, ["before the restart"])
    server.kill()
    expect(ann.locator("#state")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    expect(ann.locator("#state")).to_have_text("reconnecting")
    ann.fill("#text", "said while away")
    ann.press("#text", "Enter")
    pending = ann.locator("#pending li")
    expect(pending.locator(".text")).to_have_text("said while away")
    expect(pending.locator(".status")).to_have_text("waiting for the connection...")
    expect(ann.locator("#text")).to_have_value("")

    server.start()
    connected(ann, BACK)
    expect(message(ann, "said while away")).to_have_count(1, timeout=WAIT)
    expect(pending).to_have_count(0, timeout=WAIT)
    expect(message(bob, "said while away")).to_have_count(1, timeout=BACK)
    connected(bob)
    # The new server's log is another one: each page got a reset and cleared the room.
    expect_texts(ann, ["said while away"])
    expect_texts(bob, ["said while away"])


def test_a_demo_killed_and_restarted_on_its_sqlite_file_keeps_the_whole_conversation(
        start_demo: StartDemo, open_page: OpenPage, tmp_path: Path) -> None:
    server, url = start_demo("--db", str(tmp_path / "chat.db"))
    ann, bob = open_page(url, "Ann"), open_page(url, "Bob")
    join(ann, "dev")
    join(bob, "dev")
    say(ann, "in dev")
    open_room(ann, "main")
    open_room(bob, "main")
    say(ann, "hello")
    say(bob, "hi Ann")
    say(ann, "tpyo")
    say(bob, "never mind")
    edited = message(ann, "tpyo")
    edited.hover()
    edited.locator("button.edit").click()
    ann.locator("#messages .edit-text").fill("typo")
    ann.locator("#messages .edit-text").press("Enter")
    message(bob, "hello").hover()
    message(bob, "hello").locator('.actions button[data-emoji="🎉"]').click()
    message(bob, "never mind").hover()
    message(bob, "never mind").locator("button.delete").click()
    message(bob, "never mind").locator("button.confirm-yes").click()
    conversation = ["hello", "hi Ann", "typo"]
    expect_texts(ann, conversation)
    expect(message(ann, "hello").locator(".reaction")).to_have_text("🎉 1", timeout=WAIT)
    # A mark on what the page shows now: a reset would redraw the room without it.
    message(ann, "hello").evaluate("el => { el.dataset.before = 'restart'; }")

    server.kill()  # SIGKILL: no goodbye, nothing flushed at exit
    expect(ann.locator("#state")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    server.start()  # the same file
    connected(ann, BACK)
    connected(bob, BACK)
    # Recovered from where each page was: no reset, nothing shown twice, nothing lost.
    expect_texts(ann, conversation)
    expect(ann.locator('#messages li[data-before="restart"] .text')).to_have_text("hello")
    say(bob, "still here")
    expect_texts(ann, [*conversation, "still here"])

    # A newcomer gets it all from the file, in its current state.
    cy = open_page(url, "Cy")
    expect_texts(cy, [*conversation, "still here"])
    expect(message(cy, "typo").locator(".edited")).to_have_text("(edited)")
    expect(message(cy, "hello").locator(".reaction")).to_have_attribute("title", "Bob")
    # And Bob's page, reloaded, joins dev again and finds its message there.
    bob.reload()
    login(bob, "Bob")
    open_room(bob, "dev")
    expect_texts(bob, ["in dev"])


# -- names and safety -----------------------------------------------------------------


def test_a_bad_name_is_refused_with_the_reason_and_a_good_one_then_works(
        start_demo: StartDemo, open_page: OpenPage) -> None:
    _, url = start_demo()
    page = open_page(url)
    policy = page.request.get(url + "/").headers["content-security-policy"]
    assert policy.startswith("default-src 'self';")
    expect(page.locator("#state")).to_have_text("disconnected")
    page.fill("#name", "   ")
    page.click("#login button")
    expect(page.locator("#login-error")).to_have_text("Pick a name of 1 to 32 characters.",
                                                      timeout=WAIT)
    assert page.is_visible("#login") and not page.is_visible("#app")
    login(page, "Ann")
    assert not page.is_visible("#login")


def test_html_in_a_message_a_room_name_and_a_user_name_is_shown_as_text(
        browser: Any, start_demo: StartDemo, open_page: OpenPage) -> None:
    # Positive control: the same payload through innerHTML does open a dialog here, so
    # "no dialog" (checked by open_page) means the demo showed it as text.
    scratch_context = browser.new_context()
    scratch = scratch_context.new_page()
    seen: list[str] = []
    scratch.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    scratch.set_content("<div id=x></div>")
    with scratch.expect_event("dialog", timeout=WAIT):
        scratch.evaluate("html => { document.getElementById('x').innerHTML = html; }", XSS)
    assert seen == ["1"]
    scratch_context.close()

    _, url = start_demo()
    bob = open_page(url, "Bob")
    mallory = open_page(url, XSS)  # the demo allows any printable name
    expect(mallory.locator("#me")).to_have_text(XSS)
    say(mallory, XSS)
    message(mallory, XSS).hover()
    message(mallory, XSS).locator('.actions button[data-emoji="🎉"]').click()
    mallory.fill("#room-name", XSS)
    mallory.press("#room-name", "Enter")
    expect(mallory.locator("#room-error")).to_contain_text(f'Could not join "{XSS}"',
                                                           timeout=WAIT)
    keep_typing_until_seen(mallory, bob, f"{XSS} is typing...")

    line = message(bob, XSS)
    expect(line.locator(".who")).to_have_text(XSS, timeout=WAIT)
    expect(line.locator(".reaction")).to_have_attribute("title", XSS, timeout=WAIT)
    expect(members(bob)).to_have_text(sorted(["Bob", XSS]))
    expect(mallory.locator("#seen")).to_have_text("seen by Bob", timeout=WAIT)
    say(bob, "noted")
    expect(bob.locator("#seen")).to_have_text(f"seen by {XSS}", timeout=WAIT)
    for page in (bob, mallory):
        assert page.locator("#app img").count() == 0


def test_the_page_has_no_inline_script_and_never_writes_html() -> None:
    # What the CSP would refuse anyway (inline scripts), and the calls that would turn
    # text into markup: none in the demo's own code.
    demo = Path(__file__).parents[2] / "demo"
    page = (demo / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert re.search(r"<script\b[^>]*>\s*(?!</script>)\S", page) is None  # no body
    for source in sorted((demo / "static").glob("*.js")):
        code = source.read_text()
        for call in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert call not in code, f"{source.name} uses {call}"
