"""The demo as a process: SIGTERM shuts it down gracefully and within a bound."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from browser.conftest import ServerProcess, free_port
from clients import NativeWebSocketClient


@pytest.mark.gen_test(timeout=30)
async def test_sigterm_tells_clients_to_reconnect_and_the_demo_exits(tmp_path: Path) -> None:
    port = free_port()
    # On its default store, a SQLite file (with its helper process), in a file of the test's.
    demo = ServerProcess([sys.executable, "demo/app.py", "--port", str(port),
                          "--db", str(tmp_path / "chat.db")])
    demo.start()
    try:
        client = NativeWebSocketClient(f"http://127.0.0.1:{port}")
        await client.connect()
        assert (await client.auth({"name": "Ann"}))["t"] == "welcome"
        assert demo.proc is not None
        begun = time.monotonic()
        demo.proc.send_signal(signal.SIGTERM)
        bye = await client.recv_type("error", timeout=10)
        assert (bye["code"], bye["fatal"]) == (4014, True) and bye["retry"] > 0
        await client.closed(timeout=10)
        await client.aclose()
        assert demo.proc.wait(15) == 0
        assert time.monotonic() - begun < 15
    finally:
        demo.kill()
