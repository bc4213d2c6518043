"""MemoryStore vs SQLiteStore, side by side, in one run.

    .venv/bin/python bench/store_bench.py [--quick] [--json PATH]

Starts one chitchat server process per store (each on its own port, pinned to cpu 0
with ``taskset`` when there is one; this process, the clients, on cpu 1), rate limits
and presence off, and measures on each, alternating between them:

- **sends**: accepted sends per second from 100 senders, each in a room of its own,
  each keeping 1, then 4 sends in flight (``--windows``; the next goes when an ack
  comes back). chitchat handles a connection's frames one at a time: with the memory
  store (which never waits) a window of 4 goes through in one pass, with a store that
  waits for its disk each connection has one send in the store at a time;
- **fan-out**: deliveries per second to 200 receivers of the default room, from 50
  senders with one send in flight each. chitchat handles a connection's frames one at
  a time, so what a store can commit together is one send per connection: a few
  senders would measure the disk's fsync latency, not the fan-out;
- **recovery**: 1,000 clients that each missed 1,000 messages of the default room
  reconnect at once with ``since``: the time until every one has them all (and no
  ``reset``), and the server's CPU seconds for it (/proc, every thread).

Each figure is the median of ``--repeat`` runs. The SQLite file is in a temporary
directory on the file system of ``--db-dir`` (its type and fsync time are printed:
a tmpfs would flatter SQLite). The same file also runs a server: ``--serve memory``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from wsclient import Codec, WSClient  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
TEXT = "x" * 80  # a message's data is about 100 bytes of JSON

# -- the server (``--serve``) -------------------------------------------------------------


def serve(store_kind: str, port: int, db: str) -> None:
    sys.path.insert(0, str(HERE / "servers"))
    sys.path.insert(0, str(ROOT))
    import tornado.web
    from common import serve as serve_app

    import chitchat

    async def make_app() -> tornado.web.Application:
        store = chitchat.SQLiteStore(db) if store_kind == "sqlite" else chitchat.MemoryStore()
        chat = chitchat.Chat(store=store, send_rate=None, frame_rate=None,
                             max_user_connections=None, presence=False)

        @chat.authorize
        def authorize(data: Any, good: Any, bad: Any) -> None:
            good(data["name"])

        return tornado.web.Application(chat.router("/chat").urls)

    serve_app(make_app, port, after_start=chitchat.tune_gc)


class Server:
    def __init__(self, store_kind: str, db: str) -> None:
        import socket
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() != 1 else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, str(Path(__file__).resolve()), "--serve", store_kind,
             "--port", str(self.port), "--db", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"the {store_kind} server did not start: {line!r}")
        self.pid = int(line.split()[1])

    def pids(self) -> list[int]:
        """The server and its children (SQLiteStore's helper process)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return [self.pid, *map(int, f.read().split())]
        except OSError:
            return [self.pid]

    def cpu(self) -> float:
        """CPU seconds used by the server so far (all its threads and children)."""
        total = 0
        for pid in self.pids():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def others(self) -> tuple[float, float]:
        """CPU seconds so far that other processes used on the server's cpu (the outside
        load; on a machine with one cpu: on any), and that the hypervisor took (steal)."""
        line = "cpu0 " if os.cpu_count() != 1 else "cpu "
        with open("/proc/stat") as f:
            for text in f:
                if text.startswith(line):
                    user, nice, system, _, _, _, _, steal = map(int, text.split()[1:9])
                    return (user + nice + system) / CLK_TCK - self.cpu(), steal / CLK_TCK
        return 0.0, 0.0

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the server stops at EOF
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- the clients --------------------------------------------------------------------------


class Native(Codec):
    """chitchat's native WebSocket; ``client.auth`` is the auth frame to send."""

    def path(self, index: int) -> str:
        return "/chat/ws"

    def on_open(self, client: WSClient) -> None:
        client.send_text(json.dumps(client.auth).encode())  # type: ignore[attr-defined]

    def is_authorized(self, client: WSClient, payload: bytes) -> bool:
        if payload.startswith(b'{"t":"welcome"'):
            client.welcome = json.loads(payload)  # type: ignore[attr-defined]
            return True
        return False

    def keepalive(self, client: WSClient, payload: bytes) -> None:
        if payload == b'{"t":"ping"}':
            client.send_text(b'{"t":"pong"}')


async def connect(port: int, name: str, on_payload: Callable[[WSClient, bytes, int], None],
                  default: bool = True, since: dict[str, Any] | None = None,
                  kind: type[WSClient] = WSClient) -> WSClient:
    loop = asyncio.get_running_loop()
    client = kind(Native(), HOST, port, 0, name, on_payload)
    client.auth = {"t": "auth", "v": 1, "data": {"name": name}, "default": default,  # type: ignore[attr-defined]
                   **({"since": since} if since else {})}
    client.count = 0  # type: ignore[attr-defined]
    await asyncio.wait_for(loop.create_connection(lambda: client, HOST, port), 60)
    await asyncio.wait_for(client.ready, 60)
    return client


def send_frame(ref: int, room: str | None) -> bytes:
    room_field = f'"room":"{room}",' if room else ""
    return f'{{"t":"send","ref":{ref},{room_field}"data":{{"text":"{TEXT}"}}}}'.encode()


class Senders:
    """Clients that each keep ``window`` sends in flight in their room until stopped."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.sent = 0
        self.acks = 0
        self.refused = 0
        self.running = True
        self.rooms: dict[WSClient, str | None] = {}
        self.refs: dict[WSClient, int] = {}
        self.sent_at: dict[tuple[WSClient, int], float] = {}
        self.latencies: list[float] = []  # seconds from a send to its ack

    def on_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"t":"ack","ref":'):
            if client in self.refs:
                self.acks += 1
                ref = int(payload[17:payload.index(b",", 17)])
                sent = self.sent_at.pop((client, ref), None)
                if sent is not None:
                    self.latencies.append(time.perf_counter() - sent)
                if self.running:
                    self.send(client)
        elif payload.startswith((b'{"t":"nack"', b'{"t":"error"')):
            self.refused += 1

    def send(self, client: WSClient) -> None:
        self.refs[client] += 1
        self.sent += 1
        self.sent_at[client, self.refs[client]] = time.perf_counter()
        client.send_text(send_frame(self.refs[client], self.rooms[client]))

    def start(self, clients: list[WSClient]) -> None:
        for client in clients:
            self.refs[client] = 0
            for _ in range(self.window):
                self.send(client)


def latency(fleet: Senders) -> dict[str, float]:
    """The median and 99th percentile of the send -> ack times, in ms."""
    times = sorted(fleet.latencies) or [float("nan")]
    return {"p50": times[len(times) // 2] * 1000, "p99": times[int(len(times) * 0.99)] * 1000}


async def join(client: WSClient, room: str) -> None:
    """Join ``room`` (ref 0) and wait for the ack."""
    joined = asyncio.get_running_loop().create_future()
    on_payload = client.on_payload

    def waiting(c: WSClient, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"t":"ack","ref":0,') and not joined.done():
            joined.set_result(None)

    client.on_payload = waiting
    client.send_text(json.dumps({"t": "join", "ref": 0, "room": room}).encode())
    await asyncio.wait_for(joined, 60)
    client.on_payload = on_payload


class Receiver(WSClient):
    """A client that only counts the messages it gets: once authorized it looks for
    ``{"id":`` (each message's JSON starts so) and ``reset``/``ping`` frames in the raw
    bytes, without cutting frames out (the load generator must not be the limit)."""

    MESSAGE, FRAME, RESET, PING = b'{"id":', b'{"t":"messages"', b'{"t":"reset"', b'{"t":"ping"}'

    def data_received(self, data: bytes) -> None:
        if not self.authorized:
            super().data_received(data)
            return
        text = self._tail + self._buf + data  # _buf: what the frame parser left over
        self._buf = b""
        self.count += text.count(self.MESSAGE)  # type: ignore[attr-defined]
        self.frames += text.count(self.FRAME) - self._tail.count(self.FRAME)
        if self.RESET in text:
            self.count = -10**9  # type: ignore[attr-defined]
        if self.PING in text:
            self.send_text(b'{"t":"pong"}')
        self._tail = text[-11:]  # a pattern cut in two by the TCP stream is seen once
        self.count -= self._tail.count(self.MESSAGE)  # type: ignore[attr-defined]

    _tail = b""
    frames = 0


def count_messages(client: WSClient, payload: bytes, now: int) -> None:
    if payload.startswith(b'{"t":"messages"'):
        client.count += payload.count(b'{"id":')  # type: ignore[attr-defined]
    elif payload.startswith(b'{"t":"reset"'):
        client.count = -10**9  # type: ignore[attr-defined]


async def measure(server: Server, seconds: float, counter: Callable[[], int]) -> dict[str, float]:
    await asyncio.sleep(0.5)  # warm-up
    count0, cpu0, others0, t0 = counter(), server.cpu(), server.others(), time.monotonic()
    client0 = time.process_time()
    await asyncio.sleep(seconds)
    count1, cpu1, others1, t1 = counter(), server.cpu(), server.others(), time.monotonic()
    return {"rate": (count1 - count0) / (t1 - t0), "cpu": (cpu1 - cpu0) / (t1 - t0),
            "client": (time.process_time() - client0) / (t1 - t0),
            "others": (others1[0] - others0[0]) / (t1 - t0),
            "steal": (others1[1] - others0[1]) / (t1 - t0)}


async def phase_sends(server: Server, seconds: float, senders: int,
                      window: int) -> dict[str, float]:
    fleet = Senders(window)
    clients = await asyncio.gather(*[connect(server.port, f"s{n}", fleet.on_payload, False)
                                     for n in range(senders)])
    for n, client in enumerate(clients):
        await join(client, f"room-{n}")
        fleet.rooms[client] = f"room-{n}"
    fleet.start(clients)
    result = await measure(server, seconds, lambda: fleet.acks)
    fleet.running = False
    result.update(latency(fleet), refused=fleet.refused)
    for client in clients:
        client.close()
    return result


async def phase_fanout(server: Server, seconds: float, receivers: int,
                       senders: int, window: int) -> dict[str, float]:
    # Everyone in the default room: a Receiver only counts, it cannot wait for a join.
    fans = await asyncio.gather(*[connect(server.port, f"r{n}", count_messages, kind=Receiver)
                                  for n in range(receivers)])
    fleet = Senders(window)
    clients = await asyncio.gather(*[connect(server.port, f"f{n}", fleet.on_payload)
                                     for n in range(senders)])
    for client in clients:
        fleet.rooms[client] = None
    fleet.start(clients)
    def delivered() -> int:
        return sum(c.count for c in fans)  # type: ignore[attr-defined]

    def frames() -> int:
        return sum(c.frames for c in fans)  # type: ignore[attr-defined]

    before = delivered(), frames()
    result = await measure(server, seconds, delivered)
    fleet.running = False
    per_frame = (delivered() - before[0]) / max(frames() - before[1], 1)
    result.update(latency(fleet), per_frame=per_frame)
    result["dropped"] = sum(1 for c in fans if c.closed)
    for client in [*fans, *clients]:
        client.close()
    return result


async def phase_recovery(server: Server, clients: int, missed: int) -> dict[str, float]:
    fleet = Senders(8)
    probe = await connect(server.port, "probe", fleet.on_payload)
    room = probe.welcome["room"]  # type: ignore[attr-defined]
    since = {"epoch": room["epoch"], "seq": room["seq"]}
    fleet.rooms[probe] = None  # the default room
    fleet.start([probe])
    while fleet.acks < missed:
        await asyncio.sleep(0.01)
    fleet.running = False
    while fleet.acks + fleet.refused < fleet.sent:  # the last ones in flight
        await asyncio.sleep(0.01)
    probe.close()
    cpu0, others0, t0 = server.cpu(), server.others(), time.monotonic()
    fleet_clients = await asyncio.gather(*[
        connect(server.port, f"c{n}", count_messages, since=since, kind=Receiver)
        for n in range(clients)])
    total = fleet.acks
    deadline = time.monotonic() + 300
    while any(c.count < total for c in fleet_clients):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            counts = sorted({c.count for c in fleet_clients})  # type: ignore[attr-defined]
            raise RuntimeError(f"recovery did not finish: {total} expected, got {counts[:5]}")
        if any(c.count < 0 or c.closed for c in fleet_clients):  # type: ignore[attr-defined]
            raise RuntimeError("a recovering client got a reset or was dropped")
        await asyncio.sleep(0.005)
    t1, cpu1, others1 = time.monotonic(), server.cpu(), server.others()
    wrong = sum(1 for c in fleet_clients if c.count != total)  # type: ignore[attr-defined]
    for client in fleet_clients:
        client.close()
    return {"seconds": t1 - t0, "cpu": cpu1 - cpu0,
            "others": (others1[0] - others0[0]) / (t1 - t0),
            "steal": (others1[1] - others0[1]) / (t1 - t0), "missed": total, "wrong": wrong}


# -- the run ----------------------------------------------------------------------------


def fs_facts(directory: str) -> tuple[str, float]:
    """The file system type of ``directory`` and one fsync's time there (ms)."""
    best, fstype = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            _, mount, kind = line.split()[:3]
            if directory.startswith(mount) and len(mount) > len(best):
                best, fstype = mount, kind
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        start = time.perf_counter()
        for _ in range(20):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        return fstype, (time.perf_counter() - start) / 20 * 1000
    finally:
        os.close(fd)
        os.unlink(path)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db_dir = tempfile.mkdtemp(prefix="store-bench-", dir=args.db_dir)
    servers = {"memory": Server("memory", ""),
               "sqlite": Server("sqlite", os.path.join(db_dir, "chat.db"))}
    phases = [f"sends{window}" for window in args.windows] + ["fanout", "recovery"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        kind: {phase: [] for phase in phases} for kind in servers}
    try:
        for repeat in range(args.repeat):
            order = list(servers) if repeat % 2 == 0 else list(servers)[::-1]
            for window in args.windows:
                for kind in order:
                    results[kind][f"sends{window}"].append(await phase_sends(
                        servers[kind], args.seconds, args.senders, window))
            for kind in order:
                results[kind]["fanout"].append(await phase_fanout(
                    servers[kind], args.seconds, args.receivers, args.fan_senders, args.fan_window))
            for kind in order:
                results[kind]["recovery"].append(await phase_recovery(
                    servers[kind], args.clients, args.missed))
            print(f"  run {repeat + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(db_dir, ignore_errors=True)
    return results


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def per_cpu(runs: list[dict[str, float]]) -> float:
    """The rate per second of the server's CPU: what outside load disturbs least."""
    return statistics.median(run["rate"] / run["cpu"] for run in runs if run["cpu"] > 0)


def refused(phases: dict[str, list[dict[str, float]]]) -> float:
    return sum(r.get("refused", 0) for name, runs in phases.items() if name.startswith("sends")
               for r in runs)


def report(args: argparse.Namespace, results: dict[str, Any], fs: tuple[str, float]) -> str:
    mem, sql = results["memory"], results["sqlite"]
    rows: list[tuple[str, float, float, str]] = []
    for window in args.windows:
        m, q = mem[f"sends{window}"], sql[f"sends{window}"]
        rows += [
            (f"sends/s ({args.senders} senders, window {window})", median(m, "rate"),
             median(q, "rate"), ">= 0.70x"),
            ("  server CPU (cores busy)", median(m, "cpu"), median(q, "cpu"), ""),
            ("  sends per second of server CPU", per_cpu(m), per_cpu(q), ">= 0.70x"),
            ("  send -> ack, median ms", median(m, "p50"), median(q, "p50"), ""),
            ("  send -> ack, 99th percentile ms", median(m, "p99"), median(q, "p99"), ""),
        ]
    rows += [
        (f"fan-out deliveries/s ({args.receivers} receivers, {args.fan_senders} senders)",
         median(mem["fanout"], "rate"), median(sql["fanout"], "rate"), "0.90x .. 1.10x"),
        ("  server CPU (cores busy)", median(mem["fanout"], "cpu"),
         median(sql["fanout"], "cpu"), ""),
        ("  deliveries per second of server CPU", per_cpu(mem["fanout"]),
         per_cpu(sql["fanout"]), "0.90x .. 1.10x"),
        ("  messages per delivered frame (coalesced per loop turn)",
         median(mem["fanout"], "per_frame"), median(sql["fanout"], "per_frame"), ""),
        ("  load generator CPU (cores busy; 1.0: it is the limit)",
         median(mem["fanout"], "client"), median(sql["fanout"], "client"), ""),
        ("  send -> ack, median ms", median(mem["fanout"], "p50"),
         median(sql["fanout"], "p50"), ""),
        (f"recovery: {args.clients} x {args.missed} missed, seconds",
         median(mem["recovery"], "seconds"), median(sql["recovery"], "seconds"), ""),
        ("  server CPU seconds", median(mem["recovery"], "cpu"),
         median(sql["recovery"], "cpu"), ""),
    ]
    lines = [f"{'':58} {'memory':>11} {'sqlite':>11} {'sqlite/mem':>10}  target",
             "-" * 102]
    for name, m, s, target in rows:
        lines.append(f"{name:58} {m:>11,.2f} {s:>11,.2f} {s / m:>9.2f}x  {target}")
    others = {kind: max(r["others"] for phase in results[kind].values() for r in phase)
              for kind in results}
    steal = {kind: max(r["steal"] for phase in results[kind].values() for r in phase)
             for kind in results}
    lines += ["",
              f"SQLite file on {fs[0]} (one 4 KiB write + fsync: {fs[1]:.2f} ms); "
              f"synchronous=FULL, WAL",
              f"median of {args.repeat} run(s) each; {args.seconds:g} s per sends/fan-out run",
              "outside load on the server's cpu (other processes), worst run: "
              + ", ".join(f"{k} {v:.2f} cores" for k, v in others.items())
              + "; taken by the hypervisor (steal): "
              + ", ".join(f"{k} {v:.2f} cores" for k, v in steal.items()),
              "refused sends: " + ", ".join(f"{k} {refused(results[k]):g}" for k in results)
              + "; dropped receivers: " + ", ".join(
                  f"{k} {sum(r['dropped'] for r in results[k]['fanout']):g}" for k in results)
              + "; recovering clients with a wrong count: " + ", ".join(
                  f"{k} {sum(r['wrong'] for r in results[k]['recovery']):g}" for k in results)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs, one repeat (~1-2 min)")
    p.add_argument("--seconds", type=float, default=None, help="per sends/fan-out run")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--senders", type=int, default=100)
    p.add_argument("--windows", default="1,4",
                   help="sends in flight per sender, one sends run for each (comma-separated)")
    p.add_argument("--receivers", type=int, default=200)
    p.add_argument("--fan-senders", type=int, default=50,
                   help="senders into the fan-out room (enough to keep the server busy)")
    p.add_argument("--fan-window", type=int, default=1, help="sends in flight per fan-out sender")
    p.add_argument("--clients", type=int, default=1000, help="recovering clients")
    p.add_argument("--missed", type=int, default=1000, help="messages each one missed")
    p.add_argument("--db-dir", default=None, help="where the SQLite file goes (default: TMPDIR)")
    p.add_argument("--json", default="", help="also write the raw results here")
    p.add_argument("--serve", choices=["memory", "sqlite"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--db", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.db)
        return
    args.windows = [int(w) for w in args.windows.split(",")]
    args.seconds = args.seconds or (4.0 if args.quick else 10.0)
    args.repeat = args.repeat or (1 if args.quick else 3)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the clients keep off the servers' cpu
    gc.disable()  # the load generator must not pause
    fs = fs_facts(args.db_dir or tempfile.gettempdir())
    started = time.monotonic()
    results = asyncio.run(run(args))
    print(report(args, results, fs))
    print(f"({time.monotonic() - started:.0f} s; {' '.join(sys.argv)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
