"""Shared start-up for the benchmark servers: parse --port, listen on 127.0.0.1 only,
print READY, stop on SIGTERM/SIGINT or when stdin closes (the runner went away).

On SIGUSR1 a server prints ``PROBE {"rss_kb": ..., "garbage": ..., "objects": ...}``: its
RSS, then what a full collection found unreachable (cyclic garbage, which only the
collector frees) and the number of objects it tracks afterwards, by type, and its
running tasks: the memory scenario's leak check (RSS says what the OS sees, the object
count what is still alive).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def probe() -> None:
    rss = rss_kb()
    # What a full collection finds unreachable: kept (DEBUG_SAVEALL) to be counted by
    # type, then freed by a second collection.
    gc.set_debug(gc.DEBUG_SAVEALL)
    unreachable = gc.collect()
    garbage = collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(8)
    gc.set_debug(0)
    gc.garbage.clear()
    gc.collect()
    alive = gc.get_objects()
    kinds = collections.Counter(type(o).__qualname__ for o in alive).most_common(15)
    tasks = collections.Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks())
    print("PROBE " + json.dumps({"rss_kb": rss, "garbage": unreachable,
                                 "garbage_types": garbage, "objects": len(alive),
                                 "types": kinds, "tasks": tasks.most_common(5)}), flush=True)


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
        loop.add_signal_handler(signal.SIGUSR1, probe)
        if stat.S_ISFIFO(os.fstat(0).st_mode):  # the runner holds our stdin: EOF = stop
            loop.add_reader(0, lambda: stop.set() if not os.read(0, 4096) else None)
        print(f"READY {os.getpid()}", flush=True)
        await stop.wait()
        server.stop()
        if pauses is not None:
            pauses.dump(gc_stats)

    asyncio.run(main())
