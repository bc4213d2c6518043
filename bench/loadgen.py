"""A load-generator worker process: hosts a share of the receivers, or the sender.

The runner (``bench/run.py``) starts several of these, pinned to the load core(s), and
drives them over a multiprocessing pipe with small command dicts. Each receiver checks
every benchmark message it gets: the run id, a per-run sequence number (lost,
duplicated, out-of-order) and the sender's clock (end-to-end latency, kept as a
10-microsecond histogram so that workers can be merged exactly).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from multiprocessing.connection import Connection
from collections.abc import Callable
from typing import Any

from wsclient import CODECS, MSG_RE, WSClient, connect, now_us

HOST = "127.0.0.1"
#: Latency histogram: 10 us buckets below 100 ms, then 1 ms buckets up to 60 s.
FINE_US, FINE_LIMIT, COARSE_US = 10, 100_000, 1000
HIST_MAX = FINE_LIMIT // FINE_US + 60_000


def bucket_ms(index: int) -> float:
    """The middle of a histogram bucket, in milliseconds."""
    if index < FINE_LIMIT // FINE_US:
        return (index + 0.5) * FINE_US / 1000
    return (FINE_LIMIT + (index - FINE_LIMIT // FINE_US + 0.5) * COARSE_US) / 1000


def bucket(lat_us: int) -> int:
    if lat_us < FINE_LIMIT:
        return lat_us // FINE_US if lat_us > 0 else 0
    return min(HIST_MAX, FINE_LIMIT // FINE_US + (lat_us - FINE_LIMIT) // COARSE_US)


class Receivers:
    """The bookkeeping of every receiver in this process for the current run."""

    def __init__(self, progress: Any, slot: int) -> None:
        # Deliveries so far in this run, shared with the sender (one slot per worker).
        self.progress = progress
        self.slot = slot
        self.clients: list[WSClient] = []
        self.run_b = b""
        self.expected = 0
        self.reset(0, 0)

    def reset(self, run: int, expected: int) -> None:
        """Start run ``run``; ``expected`` messages per receiver (-1: told later)."""
        self.run_b = str(run).encode()
        self.expected = expected
        self.hist = [0] * (HIST_MAX + 1)
        self.deliveries = 0
        self.dup = 0
        self.ooo = 0
        self.stale = 0  # messages of another run (e.g. chitchat's history for newcomers)
        self.complete = 0
        self.progress[self.slot] = 0
        self.first = 0
        self.last = 0
        self.done = asyncio.Event()
        for client in self.clients:
            # [next expected seq, unique count, seqs skipped and not yet seen, expected]
            client.state = [0, 0, None, expected]
        if expected == 0 or not self.clients:
            self.done.set()

    def expect(self, expected: int) -> None:
        """The sender has said how many messages the run has."""
        self.expected = expected
        self.expect_each(lambda client: expected)

    def expect_each(self, expected: Callable[[WSClient], int]) -> None:
        """Each receiver's own count (the many-rooms runs: its room sender's)."""
        for client in self.clients:
            client.state[3] = expected(client)
        self.complete = sum(1 for c in self.clients if c.state[1] >= c.state[3])
        if self.complete == len(self.clients):
            self.done.set()

    def on_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        found = MSG_RE.findall(payload)
        if not found:
            return
        st = client.state
        hist = self.hist
        run_b = self.run_b
        for run, seq_b, clock in found:
            if run != run_b:
                self.stale += 1
                continue
            seq = int(seq_b)
            lat = now - int(clock)
            hist[lat // 10 if 0 <= lat < 100_000 else bucket(lat)] += 1
            self.deliveries += 1
            nxt = st[0]
            if seq == nxt:
                st[0] = nxt + 1
                st[1] += 1
            elif seq > nxt:
                missing = st[2]
                if missing is None:
                    missing = st[2] = set()
                missing.update(range(nxt, seq))
                st[0] = seq + 1
                st[1] += 1
            else:
                missing = st[2]
                if missing is not None and seq in missing:
                    missing.discard(seq)
                    self.ooo += 1
                    st[1] += 1
                else:
                    self.dup += 1
                    continue
            if st[1] == st[3]:
                self.complete += 1
                if self.complete == len(self.clients):
                    self.done.set()
        if not self.first:
            self.first = now
        self.last = now
        self.progress[self.slot] = self.deliveries

    def lost(self) -> int:
        return sum(c.state[3] - c.state[1] for c in self.clients)

    def summary(self) -> dict[str, Any]:
        hist = {i: n for i, n in enumerate(self.hist) if n}
        return {
            "deliveries": self.deliveries, "lost": self.lost(), "dup": self.dup,
            "ooo": self.ooo, "stale": self.stale, "first": self.first, "last": self.last,
            "hist": hist, "closed": sum(1 for c in self.clients if c.closed),
            "close_reasons": sorted({c.close_reason for c in self.clients
                                     if c.close_reason})[:3],
        }


class Sender:
    """The one sending client; it also sees its own messages come back (the echo)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.client: WSClient | None = None
        self.run_b = b""
        self.seen: set[int] = set()
        self.echo = asyncio.Event()
        self.rtts: list[int] = []

    def on_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        for run, seq_b, clock in MSG_RE.findall(payload):
            if run == self.run_b:
                seq = int(seq_b)
                if seq not in self.seen:
                    self.seen.add(seq)
                    self.rtts.append(now - int(clock))
                    self.echo.set()

    async def send(self, run: int, count: int, rate: float | None, window: int,
                   timeout: float, seconds: float | None = None,
                   receivers: int = 0) -> dict[str, Any]:
        """Send ``count`` messages at ``rate`` per second (None: as fast as the window
        allows); stop early after ``seconds`` if given.

        The window: never more than ``window`` messages without their echo, nor more than
        ``window`` x ``receivers`` deliveries not yet made (counted by every receiver
        worker in shared memory; once full, until half of them are made), so that the
        slower side, server or load generator, sets the pace and no queue grows without
        bound."""
        assert self.client is not None
        client = self.client
        self.run_b = str(run).encode()
        self.seen = set()
        self.rtts = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first = now_us()
        start = loop.time()
        stop_at = start + seconds if seconds else float("inf")
        for seq in range(count):
            if seq and loop.time() >= stop_at:
                count = seq
                break
            if rate is not None:
                delay = start + seq / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if receivers and seq * receivers - sum(self.progress) > window * receivers:
                # Full: wait until half of it is delivered, then send a burst again (a
                # flooding sender, not a trickle, is what "as fast as possible" means).
                while seq * receivers - sum(self.progress) > window * receivers // 2:
                    await asyncio.sleep(0.0005)
                    if loop.time() > deadline or client.closed:
                        return {"first": first, "sent": seq, "timeout": True}
            while seq - len(self.seen) >= window:
                self.echo.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.echo.wait(), max(0.01, deadline - loop.time()))
                if loop.time() > deadline or client.closed:
                    return {"first": first, "sent": seq, "timeout": True}
            client.codec.send(client, run, seq)
        last = now_us()
        return {"first": first, "last_send": last, "sent": count, "timeout": False}

    async def round_trips(self, run: int, count: int, timeout: float) -> list[int]:
        """``count`` messages one at a time, each sent once the previous one came back."""
        assert self.client is not None
        self.run_b = str(run).encode()
        self.seen = set()
        self.rtts = []
        for seq in range(count):
            self.echo.clear()
            self.client.codec.send(self.client, run, seq)
            await asyncio.wait_for(self.echo.wait(), timeout)
        return self.rtts


def rooms_of(layout: dict[str, Any] | None, i: int) -> list[str]:
    """The rooms connection ``i`` joins after authorizing.

    ``{"size": k, "prefix": p}``: groups of ``k`` consecutive connections share room
    ``p<i // k>`` (the first of each group is its room's sender); ``{"spread": j,
    "pool": m, "prefix": p}``: ``j`` rooms out of ``m`` shared ones, evenly spread."""
    if not layout:
        return []
    if "size" in layout:
        return [f"{layout['prefix']}{i // layout['size']}"]
    j, m = layout["spread"], layout["pool"]
    return [f"{layout['prefix']}{(i + k * (m // j)) % m}" for k in range(j)]


def is_room_sender(layout: dict[str, Any] | None, i: int) -> bool:
    return bool(layout) and "size" in layout and i % layout["size"] == 0


class Readers:
    """The markRead scenario's receivers: count the ``read`` frames each one gets, and
    the users announced at the final read position (all of them: that client is done)."""

    def __init__(self) -> None:
        self.reset(0, 0)

    def reset(self, final: int, users: int) -> None:
        self.final = final
        self.users = users
        self.frames = 0
        self.entries = 0
        self.complete = 0
        self.clients = 0
        self.first = 0
        self.last = 0
        self.done = asyncio.Event()

    def on_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        if not payload.startswith(b'{"t":"read"'):
            return  # acks of its own reads, pings
        reads = json.loads(payload)["reads"]
        self.frames += 1
        self.entries += len(reads)
        self.first = self.first or now
        self.last = now
        at_final = sum(1 for seq in reads.values() if seq == self.final)
        if at_final:
            client.state[0] += at_final
            if client.state[0] == self.users:
                self.complete += 1
                if self.complete == self.clients:
                    self.done.set()


class Worker:
    def __init__(self, conn: Connection, progress: Any, slot: int) -> None:
        self.conn = conn
        self.receivers = Receivers(progress, slot)
        self.sender = Sender(progress)
        self.room_senders: list[WSClient] = []
        self.readers = Readers()
        self.cpu0 = 0.0
        self.wall0 = 0.0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop.add_reader(self.conn.fileno(), lambda: queue.put_nowait(self.conn.recv()))
        while True:
            cmd = await queue.get()
            if cmd["cmd"] == "exit":
                break
            try:
                reply = await getattr(self, "cmd_" + cmd["cmd"])(**cmd.get("args", {}))
            except Exception as exc:  # report, don't die: the runner decides
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.conn.send(reply)
        for client in self.receivers.clients:
            client.close()
        if self.sender.client is not None:
            self.sender.client.close()

    async def cmd_connect(self, kind: str, port: int, first: int, count: int,
                          concurrency: int, role: str, timeout: float,
                          layout: dict[str, Any] | None = None,
                          default_room: bool = True) -> dict[str, Any]:
        """Connect and authorize ``count`` clients (users ``u<first>``...), each joining
        the rooms ``layout`` gives it (see ``rooms_of``); role ``recv``: receivers (a
        room's first member also its sender), ``send``: the one sender, ``read``: the
        markRead scenario's readers. Durations: from the TCP connect to ready
        (authorized, and every room joined)."""
        codec = CODECS[kind]()
        cpu0 = time.process_time()
        sem = asyncio.Semaphore(concurrency)
        durations: list[float] = []
        errors: list[str] = []
        handlers = {"recv": self.receivers.on_payload, "send": self.sender.on_payload,
                    "read": self.readers.on_payload}

        async def one(i: int) -> None:
            sender = role in ("recv", "read") and is_room_sender(layout, i)
            on_payload = self.room_sender_payload if sender else handlers[role]
            async with sem:
                try:
                    client = await connect(codec, HOST, port, i, f"u{i}", on_payload, timeout,
                                           rooms_of(layout, i), default_room)
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
            durations.append(client.ready_at - client.started)
            if layout and "size" in layout:
                client.send_room = client.rooms[0]
            if sender:
                client.deliver = handlers[role]
                self.room_senders.append(client)
            if role in ("recv", "read"):
                client.state = [0, 0, None, 0]
                self.receivers.clients.append(client)
            else:
                self.sender.client = client

        await asyncio.gather(*(one(i) for i in range(first, first + count)))
        return {"durations": durations, "errors": errors[:5], "failed": len(errors),
                "cpu": time.process_time() - cpu0}

    async def cmd_cycles(self, kind: str, port: int, first: int, count: int,
                         concurrency: int, timeout: float) -> dict[str, Any]:
        """``count`` connect -> authorize -> close cycles, ``concurrency`` at a time, user
        names ``u<first>``, ``u<first+1>``...: the memory scenario's churn."""
        codec = CODECS[kind]()
        sem = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        done = 0

        def ignore(client: WSClient, payload: bytes, now: int) -> None:
            pass

        async def one(i: int) -> None:
            nonlocal done
            async with sem:
                try:
                    client = await connect(codec, HOST, port, i, f"u{i}", ignore, timeout)
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                await client.close_and_wait(timeout)
                done += 1

        await asyncio.gather(*(one(i) for i in range(first, first + count)))
        return {"done": done, "errors": errors[:5], "failed": len(errors)}

    async def cmd_close(self) -> dict[str, Any]:
        for client in self.receivers.clients:
            client.close()
        self.receivers.clients = []
        self.room_senders = []
        if self.sender.client is not None:
            self.sender.client.close()
            self.sender.client = None
        await asyncio.sleep(0.2)
        return {}

    async def cmd_arm(self, run: int, expected: int) -> dict[str, Any]:
        gc.collect()
        self.receivers.reset(run, expected)
        self.cpu0 = time.process_time()
        self.wall0 = time.monotonic()
        return {}

    async def cmd_collect(self, expected: int, timeout: float, idle: float) -> dict[str, Any]:
        """Wait until every receiver has all ``expected`` messages, or nothing new came
        for ``idle`` seconds, or ``timeout``."""
        self.receivers.expect(expected)
        return await self.collected(timeout, idle)

    async def collected(self, timeout: float, idle: float) -> dict[str, Any]:
        rec = self.receivers
        await wait_quiet(rec.done, lambda: rec.deliveries, timeout, idle)
        out = rec.summary()
        out["cpu"] = time.process_time() - self.cpu0
        out["wall"] = time.monotonic() - self.wall0
        out["complete"] = rec.done.is_set()
        return out

    async def cmd_send(self, run: int, count: int, rate: float | None, window: int,
                       timeout: float, seconds: float | None = None,
                       receivers: int = 0) -> dict[str, Any]:
        out = await self.sender.send(run, count, rate, window, timeout, seconds, receivers)
        out["cpu"] = time.process_time() - self.cpu0
        return out

    async def cmd_rtt(self, run: int, count: int, timeout: float) -> dict[str, Any]:
        return {"rtts": await self.sender.round_trips(run, count, timeout)}

    # -- many rooms: each room's first member sends into it ---------------------------

    def room_sender_payload(self, client: WSClient, payload: bytes, now: int) -> None:
        """A room sender's payload: an ack (of its ``send``, or of a ``read``) opens its
        window, and so does a refusal (``nack``, or an ``error`` naming a ``ref``: that
        message is counted as refused, never as sent); anything else is a delivery like
        any receiver's (its own message included: chitchat delivers it to every
        member)."""
        refused = payload.startswith((b'{"t":"nack"', b'{"t":"error"')) and b'"ref"' in payload
        if payload.startswith(b'{"t":"ack"') or refused:
            client.acked += 1
            client.refused += refused
            if client.wake is not None and not client.wake.done():
                client.wake.set_result(None)
        elif client.deliver is not None:
            client.deliver(client, payload, now)

    async def room_send(self, client: WSClient, run: int, stop_at: float, window: int,
                        deadline: float) -> int:
        """Send into ``client.send_room`` as fast as ``window`` messages without their
        ack allow, until ``stop_at``; returns how many were sent."""
        loop = asyncio.get_running_loop()
        client.acked, client.refused, seq = 0, 0, 0
        while loop.time() < stop_at and not client.closed:
            while seq - client.acked >= window:
                client.wake = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.wake, max(0.01, deadline - loop.time()))
                if loop.time() > deadline or client.closed:
                    return seq
            client.codec.send(client, run, seq)
            seq += 1
        return seq

    async def cmd_rooms_send(self, run: int, seconds: float, window: int, timeout: float,
                             idle: float) -> dict[str, Any]:
        """Every room sender of this worker sends for ``seconds`` (``window`` unacked at
        most each); then wait until every member has all of its room's messages. (A
        room's members are all in one worker: the runner splits by rooms.)"""
        loop = asyncio.get_running_loop()
        first = now_us()
        stop_at, deadline = loop.time() + seconds, loop.time() + seconds + timeout
        for client in self.room_senders:
            client.wake = None
        counts = await asyncio.gather(*(self.room_send(c, run, stop_at, window, deadline)
                                        for c in self.room_senders))
        # What each room's members must get: what its sender sent, less what the
        # server refused (known once every send is answered, or the wait is over).
        await wait_quiet(asyncio.Event(), lambda: sum(c.acked for c in self.room_senders),
                         timeout, idle, until=lambda: all(
                             c.acked >= n for c, n in zip(self.room_senders, counts)))
        accepted = {c.send_room: n - c.refused
                    for c, n in zip(self.room_senders, counts, strict=True)}
        self.receivers.expect_each(lambda client: accepted.get(client.send_room, 0))
        out = await self.collected(timeout, idle)
        out.update(first=first, sent=sum(counts),
                   refused=sum(c.refused for c in self.room_senders),
                   unanswered=sum(n - c.acked for c, n in zip(self.room_senders, counts)),
                   expected=sum(c.state[3] for c in self.receivers.clients))
        return out

    # -- markRead: every member marks the room read; the server coalesces ------------

    async def cmd_post(self, count: int, timeout: float) -> dict[str, Any]:
        """Each room sender posts ``count`` messages one at a time (each acked): entries
        to mark read."""
        for client in self.room_senders:
            client.acked, client.wake = 0, None
        loop = asyncio.get_running_loop()
        for client in self.room_senders:
            for seq in range(count):
                client.wake = loop.create_future()
                client.codec.send(client, 0, seq)
                await asyncio.wait_for(client.wake, timeout)
        return {"posted": count * len(self.room_senders)}

    async def cmd_arm_reads(self, final: int, users: int) -> dict[str, Any]:
        gc.collect()
        self.readers.reset(final, users)
        self.readers.clients = len(self.receivers.clients)
        for client in self.receivers.clients:
            client.state = [0]
        self.cpu0 = time.process_time()
        return {}

    async def cmd_mark_read(self, seq: int) -> dict[str, Any]:
        """Every client here marks its room read up to ``seq``."""
        for client in self.receivers.clients:
            client.codec.frame(client, {"t": "read", "ref": 1000 + seq,
                                        "room": client.send_room, "seq": seq})
        return {"sent": len(self.receivers.clients)}

    async def cmd_collect_reads(self, timeout: float, idle: float) -> dict[str, Any]:
        """Wait until every client has seen every user at the final position (or
        nothing came for ``idle`` s); the read frames and entries they got."""
        r = self.readers
        await wait_quiet(r.done, lambda: r.frames, timeout, idle)
        return {"frames": r.frames, "entries": r.entries, "complete": r.complete,
                "clients": r.clients, "first": r.first, "last": r.last,
                "cpu": time.process_time() - self.cpu0}


async def wait_quiet(done: asyncio.Event, progress: Callable[[], int], timeout: float,
                     idle: float, until: Callable[[], bool] | None = None) -> None:
    """Until ``done`` (or ``until()``), or ``progress()`` has not moved for ``idle`` s, or
    ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen, quiet_since = -1, loop.time()
    while not done.is_set() and not (until and until()) and loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.25)
        if progress() != seen:
            seen, quiet_since = progress(), loop.time()
        elif loop.time() - quiet_since > idle:
            break


def worker_main(conn: Connection, use_uvloop: bool, progress: Any, slot: int) -> None:
    gc.freeze()
    runner: Any = asyncio.run
    if use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(Worker(conn, progress, slot).serve())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("started by bench/run.py")

