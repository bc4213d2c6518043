"""deploy/nginx.conf as shipped (its ports replaced), a real nginx in front of two chitchat
processes on one Redis: xhr-polling and WebSocket clients chat through it, and every
request of a SockJS session reached the same process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser.conftest import ROOT, ServerProcess
from clients import TRANSPORTS
from redisutil import RedisServer, free_port
from tornado.httpclient import AsyncHTTPClient

KINDS = ["sockjs-xhr-polling"] * 4 + ["native-websocket", "sockjs-websocket"]


class Nginx:
    """nginx on a free port with a config made from deploy/nginx.conf; stopped by pid."""

    def __init__(self, upstreams: list[int]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx is not installed: tests/run.sh installs Debian's nginx")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chitchat-nginx-")
        with open(os.path.join(ROOT, "deploy", "nginx.conf"), encoding="utf-8") as f:
            shipped = f.read()
        servers = "".join(f"    server 127.0.0.1:{port};\n" for port in upstreams)
        site, count = re.subn(r"(    server 127\.0\.0\.1:\d+;\n)+", servers, shipped)
        assert count == 1, "deploy/nginx.conf: the upstream's server lines moved"
        site, count = re.subn(r"listen 8080;", f"listen 127.0.0.1:{self.port};", site)
        assert count == 1, "deploy/nginx.conf: the listen line moved"
        temp = "".join(f"    {kind}_temp_path {self.dir}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(f"daemon off;\nmaster_process off;\npid {self.dir}/nginx.pid;\n"
                    f"error_log {self.dir}/error.log warn;\nevents {{ worker_connections 256; }}\n"
                    f"http {{\n{temp}    log_format route '$uri $upstream_addr';\n"
                    f"    access_log {self.dir}/access.log route;\n{site}\n}}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([self.binary, "-p", self.dir, "-c", self.conf],
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.proc.stderr}") from None
                time.sleep(0.02)

    def routes(self) -> list[tuple[str, str]]:
        with open(os.path.join(self.dir, "access.log"), encoding="utf-8") as f:
            return [tuple(line.split(" ", 1)) for line in f.read().splitlines()]  # type: ignore[misc]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster(own_redis: RedisServer) -> Iterator[Nginx]:
    ports = [free_port(), free_port()]
    procs = [ServerProcess([sys.executable, "tests/redis_chat_server.py", "--redis",
                            own_redis.url, "--port", str(port)]) for port in ports]
    nginx = Nginx(ports)
    try:
        for proc in procs:
            proc.start()
        nginx.start()
        yield nginx
    finally:
        nginx.stop()
        for proc in procs:
            proc.kill()


@pytest.mark.gen_test(timeout=60)
async def test_polling_and_websocket_clients_chat_through_nginx(cluster: Nginx) -> None:
    url = f"http://127.0.0.1:{cluster.port}"
    names = [f"u{n}" for n in range(len(KINDS))]
    clients: list[Any] = []
    try:
        http = AsyncHTTPClient()
        for name, kind in zip(names, KINDS, strict=True):
            info = await http.fetch(url + "/chat/info")  # what sockjs-client asks first
            assert json.loads(info.body)["websocket"] is True
            client = TRANSPORTS[kind](url)
            clients.append(client)
            await client.connect()
            welcome = await client.auth({"name": name, "token": "secret-" + name})
            assert welcome["t"] == "welcome"

        async def talk(n: int, client: Any) -> list[str]:
            ids = []
            for i in range(3):
                ack = await client.request({"t": "send", "ref": i + 1, "cid": f"c{i}",
                                            "data": {"text": f"{names[n]} {i}"}})
                assert ack["t"] == "ack", ack
                ids.append(ack["msg"]["id"])
            return ids

        sent = {i for ids in await asyncio.gather(*[talk(n, c) for n, c in
                                                     enumerate(clients)]) for i in ids}

        async def everything(client: Any) -> None:
            seen: set[str] = set()
            while not sent <= seen:
                frame = await client.recv_type("messages", timeout=10)
                seen |= {m["id"] for m in frame["list"]}

        await asyncio.gather(*[everything(c) for c in clients])
    finally:
        for client in clients:
            await client.aclose()
    sessions: dict[str, set[str]] = {}
    for uri, upstream in cluster.routes():
        match = re.match(r"^/chat/[^/]+/([^/]+)/xhr", uri)
        if match:
            sessions.setdefault(match.group(1), set()).add(upstream)
    assert len(sessions) == KINDS.count("sockjs-xhr-polling")
    assert all(len(upstreams) == 1 for upstreams in sessions.values()), sessions
    # ... while the rest is spread (1 chance in 2^11 that 12 random keys miss one).
    assert len({upstream for _, upstream in cluster.routes()}) == 2
