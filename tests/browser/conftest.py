"""Real Chromium (Debian's) driven by Playwright, against servers in child processes."""

from __future__ import annotations

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

    def kill(self) -> None:
        """Stop dead, sockets closed by the OS (as a crashed server would)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process dies only once resumed
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


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
def chat_server() -> Iterator[tuple[ServerProcess, str]]:
    port = free_port()
    server = ServerProcess([sys.executable, "tests/browser/server.py", str(port)])
    server.start()
    yield server, f"http://127.0.0.1:{port}"
    server.kill()


@pytest.fixture
def new_user(browser: Any, chat_server: tuple[ServerProcess, str]) -> Iterator[Callable[..., Any]]:
    """``new_user()``: a fresh browser context (one user: own cookies) with the harness
    page open; ``new_user(context=ctx)`` opens another tab in the same context."""
    contexts: list[Any] = []
    errors: list[str] = []

    def _new(context: Any = None) -> Any:
        if context is None:
            context = browser.new_context()
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(chat_server[1] + "/")
        return page

    yield _new
    for context in contexts:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
