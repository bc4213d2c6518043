"""Shared start-up for the benchmark servers: parse --port, listen on 127.0.0.1 only,
print READY, stop on SIGTERM/SIGINT or when stdin closes (the runner went away)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.httpserver
import tornado.web


def parse_args(extra: Callable[[argparse.ArgumentParser], None] | None = None) -> Any:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gc", choices=["default", "off"], default="default",
                        help="'off' disables the cyclic GC (an experiment, not a setting)")
    parser.add_argument("--gc-stats", default="",
                        help="write the collector's pauses here (JSON) when stopping")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


class GCPauses:
    """Times every collection (``gc.callbacks``): count, total and longest, per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        gc.callbacks.append(self.on_gc)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            took = time.perf_counter() - self.started
            gen = info["generation"]
            self.count[gen] += 1
            self.total[gen] += took
            self.longest[gen] = max(self.longest[gen], took)

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"count": self.count, "total_ms": [t * 1000 for t in self.total],
                       "longest_ms": [t * 1000 for t in self.longest],
                       "threshold": gc.get_threshold(), "enabled": gc.isenabled(),
                       "frozen": gc.get_freeze_count()}, f)


def serve(make_app: Callable[[], Awaitable[tornado.web.Application]], port: int,
          gc_mode: str = "default", after_start: Callable[[], None] | None = None,
          gc_stats: str = "") -> None:
    pauses = GCPauses() if gc_stats else None

    async def main() -> None:
        app = await make_app()
        server = tornado.httpserver.HTTPServer(app)
        # A deep accept backlog: the connect storm must measure the server, not SYN drops.
        server.listen(port, address="127.0.0.1", backlog=4096)
        if gc_mode == "off":
            gc.disable()
        if after_start is not None:
            after_start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if stat.S_ISFIFO(os.fstat(0).st_mode):  # the runner holds our stdin: EOF = stop
            loop.add_reader(0, lambda: stop.set() if not os.read(0, 4096) else None)
        print(f"READY {os.getpid()}", flush=True)
        await stop.wait()
        server.stop()
        if pauses is not None:
            pauses.dump(gc_stats)

    asyncio.run(main())
