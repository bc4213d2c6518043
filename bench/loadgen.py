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
import time
from multiprocessing.connection import Connection
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
            # [next expected seq, unique count, seqs skipped and not yet seen]
            client.state = [0, 0, None]
        if expected == 0 or not self.clients:
            self.done.set()

    def expect(self, expected: int) -> None:
        """The sender has said how many messages the run has."""
        self.expected = expected
        self.complete = sum(1 for c in self.clients if c.state[1] >= expected)
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
            if st[1] == self.expected:
                self.complete += 1
                if self.complete == len(self.clients):
                    self.done.set()
        if not self.first:
            self.first = now
        self.last = now
        self.progress[self.slot] = self.deliveries

    def lost(self) -> int:
        return sum(self.expected - c.state[1] for c in self.clients)

    def summary(self) -> dict[str, Any]:
        hist = {i: n for i, n in enumerate(self.hist) if n}
        return {
            "deliveries": self.deliveries, "lost": self.lost(), "dup": self.dup,
            "ooo": self.ooo, "stale": self.stale, "first": self.first, "last": self.last,
            "hist": hist, "closed": sum(1 for c in self.clients if c.closed),
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


class Worker:
    def __init__(self, conn: Connection, progress: Any, slot: int) -> None:
        self.conn = conn
        self.receivers = Receivers(progress, slot)
        self.sender = Sender(progress)
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
                          concurrency: int, role: str, timeout: float) -> dict[str, Any]:
        codec = CODECS[kind]()
        cpu0 = time.process_time()
        sem = asyncio.Semaphore(concurrency)
        durations: list[float] = []
        errors: list[str] = []
        on_payload = self.receivers.on_payload if role == "recv" else self.sender.on_payload

        async def one(i: int) -> None:
            async with sem:
                try:
                    client = await connect(codec, HOST, port, i, f"u{i}", on_payload, timeout)
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
            durations.append(client.authorized_at - client.started)
            if role == "recv":
                client.state = [0, 0, None]
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
        rec = self.receivers
        rec.expect(expected)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen, quiet_since = -1, loop.time()
        while not rec.done.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.done.wait(), 0.25)
            if rec.deliveries != seen:
                seen, quiet_since = rec.deliveries, loop.time()
            elif loop.time() - quiet_since > idle:
                break
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

