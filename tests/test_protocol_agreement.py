"""The browser client and the server speak the same protocol constants."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import chitchat
from chitchat import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_client_constants_equal_the_servers() -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed to build the client and to run this test"
    script = "console.log(JSON.stringify(require('./static/src/protocol.js')))"
    client = json.loads(subprocess.run(
        [node, "-e", script], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout)
    server = {
        "VERSION": protocol.VERSION,
        "CLIENT_FRAMES": list(protocol.CLIENT_FRAMES),
        "SERVER_FRAMES": list(protocol.SERVER_FRAMES),
        "CODES": {code.name: int(code) for code in protocol.Code},
        "FATAL_CODES": sorted(int(code) for code in protocol.FATAL_CODES),
        "LIMITS": dict(protocol.LIMITS),
    }
    client["FATAL_CODES"] = sorted(client["FATAL_CODES"])
    assert client == server


def test_protocol_doc_lists_every_code() -> None:
    with open(os.path.join(ROOT, "docs", "PROTOCOL.md"), encoding="utf-8") as f:
        doc = f.read()
    for code in protocol.Code:
        assert f"| {int(code)} | `{code.name}` |" in doc


def test_public_surface_is_exactly_all() -> None:
    exported = sorted(name for name in dir(chitchat) if not name.startswith("_"))
    modules = {"broker", "brokers", "channels", "chat", "cors", "errors", "feed", "handlers", "hub",
               "jsonsafe", "limits", "log", "node", "origin", "presence", "protocol",
               "publisher", "receipts", "redis_presence", "roomlog", "rooms", "router",
               "session", "settings", "store", "stores", "testing", "transports",
               "typing_indicator", "user"}
    assert sorted(set(exported) - modules) == sorted(chitchat.__all__)
    assert chitchat.__all__ == sorted(chitchat.__all__)
