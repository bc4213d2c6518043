"""Real Chromium (Debian's) driven by Playwright, against servers in child processes."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Anything that is not loopback fails at once: these tests never leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium_path() -> str:
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if path and os.path.exists(path):
            return path
    raise RuntimeError("Debian's chromium is not installed (tests/run.sh installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server in a child process; ``start`` returns once it printed ``ready``."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = dict(os.environ, **(env or {}))
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, text=True,
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout) and "ready" in self.proc.stdout.readline()
        if not ready:
            self.kill()
            raise RuntimeError(f"{self.argv} did not get ready within {timeout} s")

    def pause(self) -> None:
        """Hang: the process stops running but its sockets stay open and silent."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM (the server stops gracefully, see server.py); returns the exit code
        once the process has exited."""
        assert self.proc is not None
        self.proc.terminate()
        code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        return code

    def twin(self) -> ServerProcess:
        """Another, not started, server process with the same command and environment."""
        return ServerProcess(self.argv, self.env)

    def kill(self) -> None:
        """Stop dead, sockets closed by the OS (as a crashed server would)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process dies only once resumed
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite: the test's chat server keeps its rooms in an SQLite file (the "
        "same one across restarts of the server)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module-scoped: Playwright's sync API keeps an asyncio loop running while it is
    # open, and the pytest-tornado tests elsewhere need none running.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Environment of the chat server (see server.py); a test module may override it."""
    return {}


@pytest.fixture
def chat_server(
    request: pytest.FixtureRequest, server_env: dict[str, str], tmp_path: Any
) -> Iterator[tuple[ServerProcess, str]]:
    """tests/browser/server.py on a free port, with the Chat options of the test's
    ``@pytest.mark.chat(...)`` marker (e.g. ``history=3, presence_grace=3``), on an
    SQLite file in ``tmp_path`` with ``@pytest.mark.sqlite``."""
    marker = request.node.get_closest_marker("chat")
    env = dict(server_env)
    if marker:
        env["CHITCHAT_OPTIONS"] = json.dumps(marker.kwargs)
    if request.node.get_closest_marker("sqlite"):
        env["CHITCHAT_DB"] = str(tmp_path / "chat.db")
    port = free_port()
    server = ServerProcess([sys.executable, "tests/browser/server.py", str(port)], env)
    server.start()
    yield server, f"http://127.0.0.1:{port}"
    server.kill()


class Pages:
    """Opens harness pages, each new person in a browser context of their own; closes
    the contexts and fails the test on an uncaught error in any page."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def open(self, url: str, context: Any = None) -> Any:
        if context is None:
            context = self.browser.new_context()
            self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.goto(url + "/")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"


@pytest.fixture
def pages(browser: Any) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()


@pytest.fixture
def new_user(pages: Pages, chat_server: tuple[ServerProcess, str]) -> Callable[..., Any]:
    """``new_user()``: a fresh browser context (one user: own cookies) with the harness
    page open; ``new_user(context=ctx)`` opens another tab in the same context."""
    return lambda context=None: pages.open(chat_server[1], context)


WAIT = 15_000  # ms: the longest any single step may take
FAST = {"minDelay": 100, "maxDelay": 500}  # a quick reconnect backoff (ms)

#: The client options of each transport the recovery and shutdown tests run over.
TRANSPORT_OPTIONS: dict[str, dict[str, Any]] = {
    "sockjs": {},
    "websocket": {"transport": "websocket"},
}


# Evaluates `src` as page.evaluate would (a function is called with `arg`) and waits
# for the result at most `ms`.
BOUNDED = """async ([src, arg, ms]) => {
  let value = (0, eval)('(' + src + ')');
  if (typeof value === 'function') value = value(arg);
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within ' + ms + ' ms: ' + src)), ms);
  });
  try { return await Promise.race([value, late]); } finally { clearTimeout(timer); }
}"""


class Person:
    """One tab of one person, running the harness: what the tests do and read there."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.token = "secret-" + name

    @property
    def context(self) -> Any:
        return self.page.context

    def start(self, **options: Any) -> None:
        """``start()`` in the page (the client connects) and wait for its ``connect``."""
        self.page.evaluate("([n, t, o]) => start(n, t, o)", [self.name, self.token, options])
        self.connected()

    def reload(self, **options: Any) -> None:
        """Reload the page (the client and everything it knew are gone) and start again."""
        self.page.reload()
        self.start(**options)

    def js(self, expression: str, arg: Any = None, timeout: float = WAIT) -> Any:
        """``page.evaluate(expression, arg)``, but a promise that does not settle within
        ``timeout`` ms fails the test instead of hanging it."""
        return self.page.evaluate(BOUNDED, [expression, arg, timeout])

    def until(self, condition: str, arg: Any = None, timeout: float = WAIT) -> None:
        """Wait until the JS ``condition`` (a function of ``arg`` when given) holds."""
        if arg is None:
            self.page.wait_for_function(condition, timeout=timeout)
        else:
            self.page.wait_for_function(condition, arg=arg, timeout=timeout)

    def connected(self, times: int = 1) -> None:
        self.until(f"chitchat.state() === 'connected' && count('connect') >= {times}")

    def join(self, room: str) -> dict[str, Any]:
        answer = self.js("r => joinRoom(r)", room)
        assert answer["ok"], answer
        return dict(answer["value"])

    def send(self, room: str | None, text: str) -> dict[str, Any]:
        """Send ``text`` to ``room`` (None: the default room); returns the stored message."""
        answer = self.js("([r, t]) => sendTo(r, t)", [room, text])
        assert answer["ok"], answer
        return dict(answer["value"])

    def shown(self, room: str) -> list[str]:
        """The texts of ``room`` as this person sees them now (``rec.view``)."""
        return list(self.js("r => shown(r)", room))

    def sees(self, room: str, *texts: str) -> None:
        """Wait until every one of ``texts`` is shown in ``room``."""
        try:
            self.until("([r, want]) => want.every(t => shown(r).includes(t))",
                       [room, list(texts)])
        except Exception:
            missing = set(texts) - set(self.shown(room))
            assert not missing, f"{self.name} does not see {missing} in {room}: {self.shown(room)}"
            raise

    def shows(self, room: str, texts: list[str]) -> None:
        """Wait until ``room`` shows exactly ``texts``, in this order."""
        try:
            self.until("([r, want]) => JSON.stringify(shown(r)) === JSON.stringify(want)",
                       [room, texts])
        except Exception:
            assert self.shown(room) == texts, f"what {self.name} sees in {room}"
            raise

    def events(self, name: str) -> list[Any]:
        """The args of every ``name`` event so far (connection or room event)."""
        return list(self.js("e => eventsOf(e)", name))

    def now(self) -> int:
        """The page's clock (ms), as ``rec.eventAt`` and ``rec.roomAt`` use it."""
        return int(self.js("Date.now()"))


def in_room(room: str, *persons: Person) -> None:
    """Each of ``persons`` joins ``room``, in turn."""
    for person in persons:
        person.join(room)


@pytest.fixture
def people(new_user: Callable[..., Any]) -> Callable[..., Person]:
    """``people("ann")``: a new browser context (one person) with the harness page open
    and connected; ``people("ann", tab_of=ann)``: another tab of the same person;
    ``started=False`` leaves it unconnected; other keywords are client options."""

    def _enter(name: str, tab_of: Person | None = None, started: bool = True,
               **options: Any) -> Person:
        person = Person(new_user(context=tab_of.context if tab_of else None), name)
        if started:
            person.start(**options)
        return person

    return _enter


@pytest.fixture(params=list(TRANSPORT_OPTIONS))
def transport_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The client options of each transport in turn (SockJS, native WebSocket)."""
    return dict(TRANSPORT_OPTIONS[request.param])
