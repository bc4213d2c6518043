"""Private redis-server processes for the tests, started and stopped by their pid.

``tests/run.sh`` starts one for the whole run and exports its URL as
``CHITCHAT_TEST_REDIS_URL``; ``shared_url()`` uses it, or starts one itself (a plain
``pytest`` run), or fails loudly: no Redis test is ever skipped for a missing Redis.
Tests that restart or reconfigure Redis start a ``RedisServer`` of their own.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

ENV = "CHITCHAT_TEST_REDIS_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server on a free loopback port with its own directory: append-only file
    synced on every write, no snapshots, ``noeviction`` unless told otherwise."""

    def __init__(self, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: tests/run.sh installs "
                               "Debian's redis-server")
        self.binary = binary
        self.extra = list(extra)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chitchat-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log"), "--daemonize", "no",
                "--maxmemory-policy", "noeviction", *self.extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.kill)  # never outlives the test run, however it ends
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start; see "
                                   f"{self.dir}/redis.log")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Stop it dead (SIGKILL: what was acknowledged is in the append-only file)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        """Kill it and start it again on the same port and directory."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_own: RedisServer | None = None


def shared_url() -> str:
    """The Redis every test may use (each with its own key prefix)."""
    global _own
    url = os.environ.get(ENV)
    if url:
        return url
    if _own is None:
        _own = RedisServer().start()
    return _own.url


def stop_shared() -> None:
    global _own
    if _own is not None:
        _own.stop()
        _own = None


def prefix() -> str:
    """A key prefix no other test uses."""
    return "t" + uuid.uuid4().hex[:12]


def path_prefix(path: object) -> str:
    """A key prefix standing for a directory (the store contract's ``Kind.make(path)``:
    the same directory, the same data; another directory, an empty store)."""
    return "t" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
