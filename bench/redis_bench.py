"""The Redis engine's benchmark: chitchat on Redis against chitchat in memory, and 1, 2, 4
processes on one Redis. Standalone (bench/run.py is the cross-library suite).

    .venv/bin/python bench/redis_bench.py [--seconds 4] [--senders 100] [--receivers 100]

It starts its own redis-server (loopback, a free port, append-only file synced on every
write, as docs/design.md asks for durability) and its chat processes, and measures:

- **sends**: ``--senders`` native WebSocket clients, each in a room of its own (no
  fan-out), each keeping 8 sends in flight; accepted sends (acks) per second;
- **fan-out**: 10 senders keeping 8 sends each in flight into a room of
  ``--receivers`` clients; messages delivered per second (sum over the receivers) and
  accepted sends per second (one connection's frames are handled one at a time, so a
  single sender would measure the latency of a send, not the fan-out);

first with one process on memory and one on Redis (each pair run ``--repeat`` times,
alternating, best kept: the machine is shared), then the sends with 1, 2 and 4
processes on Redis (clients spread evenly), with the CPU seconds spent by the chat
processes, redis-server and the load generator (this script) in each run, how the chat
processes spent the wall time (on a CPU, runnable but waiting for one, asleep: nothing
to do until Redis or a client answers; from /proc/<pid>/schedstat) and the commands
Redis ran per socket read (about the commands per pipeline). Rate limits
are off in the chat processes (``send_rate=None, frame_rate=None,
max_user_connections=None``): the benchmark measures the engine, not the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from wsclient import ChitchatNative, WSClient, connect, message_json  # noqa: E402

HOST = "127.0.0.1"


# -- the chat processes ---------------------------------------------------------------


def serve(port: int, redis: str | None) -> None:
    import tornado.web

    import chitchat

    async def main() -> None:
        options: dict[str, Any] = {"send_rate": None, "frame_rate": None,
                                   "max_user_connections": None}
        chat = chitchat.Chat(redis=redis, **options) if redis else chitchat.Chat(**options)

        @chat.authorize
        def authorize(data: Any, good: Any, bad: Any) -> None:
            good(data["name"])

        tornado.web.Application(chat.router("/chat").urls).listen(port, HOST)
        chitchat.tune_gc()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Proc:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        if "ready" not in self.proc.stdout.readline():
            raise RuntimeError("a chat process did not start")

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_of(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one, over all the threads of
    a process so far (Linux schedstat). The rest of the wall time it slept: waited for
    input (Redis's replies, clients' frames)."""
    on = waiting = 0
    for thread in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{thread}/schedstat") as f:
            fields = f.read().split()
        on += int(fields[0])
        waiting += int(fields[1])
    return on / 1e9, waiting / 1e9


def redis_stats(redis: Any) -> tuple[int, int]:
    """Commands processed and socket reads done by the benchmark's Redis so far."""
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "info", "stats"],
                         capture_output=True, text=True, check=True).stdout
    stats = dict(line.split(":", 1) for line in out.split() if ":" in line)
    return int(stats["total_commands_processed"]), int(stats["total_reads_processed"])


def self_cpu() -> float:
    times = os.times()
    return times.user + times.system


def start_chats(count: int, redis: str | None) -> tuple[list[Proc], list[int]]:
    from redisutil import free_port

    ports = [free_port() for _ in range(count)]
    procs = [Proc([sys.executable, __file__, "--serve", str(port),
                   *(["--redis", redis] if redis else [])]) for port in ports]
    for proc in procs:
        proc.wait_ready()
    return procs, ports


# -- the clients --------------------------------------------------------------------------


class Lone(ChitchatNative):
    """A native WebSocket client outside the default room (it joins its own)."""

    def on_open(self, client: WSClient) -> None:
        client.send_text(json.dumps({"t": "auth", "v": 1, "data": {"name": client.user},
                                     "default": False}).encode())


class Member:
    """One connection: counts acks and delivered benchmark messages, keeps ``window``
    sends in flight while ``sending``."""

    def __init__(self, room: str, window: int) -> None:
        self.room = room
        self.window = window
        self.acks = 0
        self.delivered = 0
        self.frames = 0  # messages frames received
        self.sending = False
        self.seq = 0
        self.joined = asyncio.get_running_loop().create_future()
        self.client: WSClient | None = None

    def on_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"t":"ack"'):
            if not self.joined.done():
                self.joined.set_result(None)
                return
            self.acks += 1
            if self.sending:
                self.send()
        elif payload.startswith(b'{"t":"messages"'):
            # Counted, not parsed: a light load generator leaves the chat its core.
            self.delivered += payload.count(b'"_r":')
            self.frames += 1
        elif payload == b'{"t":"ping"}':
            client.send_text(b'{"t":"pong"}')

    def send(self) -> None:
        assert self.client is not None
        self.seq += 1
        self.client.send_text(f'{{"t":"send","ref":{self.seq},"room":"{self.room}",'
                              f'"data":{message_json(1, self.seq)}}}'.encode())

    def start(self) -> None:
        self.sending = True
        for _ in range(self.window):
            self.send()


async def members(ports: list[int], rooms: list[str], window: int) -> list[Member]:
    made = []
    for n, room in enumerate(rooms):
        member = Member(room, window)
        member.client = await connect(Lone(), HOST, ports[n % len(ports)], n, f"u{n}",
                                      member.on_payload)
        member.client.send_text(json.dumps({"t": "join", "ref": 0, "room": room}).encode())
        made.append(member)
    await asyncio.gather(*[m.joined for m in made])
    return made


async def measure(senders: list[Member], receivers: list[Member], seconds: float,
                  pids: list[int], redis: Any) -> dict[str, float]:
    for sender in senders:
        sender.start()
    await asyncio.sleep(1.0)  # warm-up
    acks0 = sum(s.acks for s in senders)
    got0 = sum(r.delivered for r in receivers)
    frames0 = sum(r.frames for r in receivers)
    cpu0 = [cpu_of(pid) for pid in pids]
    sched0 = [sched_of(pid) for pid in pids[1:]]
    stats0 = redis_stats(redis) if redis is not None else (0, 0)
    me0, t0 = self_cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    took = time.monotonic() - t0
    sched = [sched_of(pid) for pid in pids[1:]]
    stats = redis_stats(redis) if redis is not None else (0, 0)
    acks = sum(s.acks for s in senders) - acks0
    got = sum(r.delivered for r in receivers) - got0
    frames = sum(r.frames for r in receivers) - frames0
    cpu = [cpu_of(pid) - before for pid, before in zip(pids, cpu0, strict=True)]
    me = self_cpu() - me0
    for sender in senders:
        sender.sending = False
    on = sum(b[0] - a[0] for a, b in zip(sched0, sched, strict=True))
    waiting = sum(b[1] - a[1] for a, b in zip(sched0, sched, strict=True))
    reads = stats[1] - stats0[1]
    return {"sends": acks / took, "delivered": got / took, "cpu_chats": sum(cpu[1:]) / took,
            "cpu_redis": cpu[0] / took, "cpu_client": me / took,
            # Per chat process: the share of the wall time it waited for a CPU, and the
            # share it slept (had nothing to do: waited for Redis or for clients).
            "waiting": waiting / took / len(sched), "asleep": max(
                0.0, 1 - (on + waiting) / took / len(sched)),
            # Commands Redis ran per socket read: about the commands per pipeline
            # (a script's own calls count too).
            "per_read": (stats[0] - stats0[0]) / reads if reads else 0.0,
            # Coalescing: messages per delivered frame.
            "per_frame": got / frames if frames else 0.0}


async def scenario(kind: str, procs: int, redis: Any, args: argparse.Namespace) -> dict[str, Any]:
    chats, ports = start_chats(procs, redis.url if redis is not None else None)
    if procs == 1 and args.pin_chat:
        os.sched_setaffinity(chats[0].proc.pid, {0})
    pids = [redis.proc.pid if redis is not None else os.getpid(), *(c.proc.pid for c in chats)]
    try:
        if kind == "sends":
            senders = await members(ports, [f"s{n}" for n in range(args.senders)], 8)
            receivers: list[Member] = []
        else:
            receivers = await members(ports, ["fan"] * args.receivers, 0)
            senders = await members(ports, ["fan"] * 10, 8)
        result = await measure(senders, receivers, args.seconds, pids, redis)
        if redis is None:
            result["cpu_redis"] = 0.0
        for member in senders + receivers:
            assert member.client is not None
            member.client.close()
        return result
    finally:
        for chat in chats:
            chat.stop()


def row(label: str, r: dict[str, Any]) -> str:
    # CPU per accepted send in the chat processes: steadier than the rates on a shared
    # machine (other load slows the rates more than it inflates the CPU per send).
    per_send = r["cpu_chats"] / r["sends"] * 1e6 if r["sends"] else 0.0
    return (f"| {label} | {r['sends']:,.0f} | {r['delivered']:,.0f} | {per_send:,.0f} | "
            f"{r['cpu_chats']:.2f} | {r['waiting']:.2f} | {r['asleep']:.2f} | "
            f"{r['cpu_redis']:.2f} | {r['cpu_client']:.2f} | {r['per_read']:.0f} | "
            f"{r['per_frame']:.1f} |")


async def run(args: argparse.Namespace) -> None:
    from redisutil import RedisServer

    redis = RedisServer("--appendfsync", args.appendfsync).start()
    lines = ["| run | accepted sends/s | deliveries/s | chat CPU us/send | CPU chat procs | "
             "chat waiting for a CPU | chat asleep | CPU redis | CPU load gen | "
             "Redis commands/read | messages/frame |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    everywhere = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pin = args.pin_chat = not args.no_pin and len(everywhere) > 1
    try:
        if pin:
            # Like bench/store_bench.py: the chat process alone on cpu 0; Redis (a
            # service of its own, on another machine in production) and the clients
            # on cpu 1, for memory and Redis alike.
            os.sched_setaffinity(redis.proc.pid, {1})
            os.sched_setaffinity(0, {1})
        for kind in ("sends", "fan-out") if args.only != "scale" else ():
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.repeat):
                for engine in ("memory", "redis"):
                    result = await scenario(kind, 1, redis if engine == "redis" else None,
                                            args)
                    key = "delivered" if kind == "fan-out" else "sends"
                    if engine not in best or result[key] > best[engine][key]:
                        best[engine] = result
            for engine in ("memory", "redis"):
                lines.append(row(f"{kind}, 1 process, {engine}", best[engine]))
                print(lines[-1], flush=True)
        args.pin_chat = False
        if pin:  # the scaling runs share both cpus, as processes on one host would
            os.sched_setaffinity(redis.proc.pid, everywhere)
            os.sched_setaffinity(0, everywhere)
        for procs in (1, 2, 4) if args.only != "compare" else ():
            result = await scenario("sends", procs, redis, args)
            lines.append(row(f"sends, {procs} process(es), redis", result))
            print(lines[-1], flush=True)
    finally:
        redis.stop()
    print("\n".join(["", f"load average {os.getloadavg()[0]:.1f} at the end; "
                     f"{os.cpu_count()} cores; {args.senders} senders, "
                     f"{args.receivers} receivers, {args.seconds:g} s per run; CPU in "
                     "cores (CPU seconds per second)", *lines]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--appendfsync", default="always",
                        help="the benchmark Redis's appendfsync (always: the durable setting)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the compared chat process to cpu 0 and Redis "
                             "and the clients to cpu 1")
    parser.add_argument("--only", choices=["compare", "scale"], help="run one part only")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.redis)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
