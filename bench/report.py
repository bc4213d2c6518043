"""Renders the results of ``bench/run.py`` as docs/benchmarks.md."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

LABEL = {
    "sockjs": "sockjs-tornado broadcast",
    "sockjs-batched": "sockjs-tornado, immediate_flush=False (batched)",
    "sockjs-noflush": "sockjs-tornado, immediate_flush=False",  # its name in older results
    "tornado-ws": "Tornado WebSocketHandler",
    "socketio": "python-socketio (room emit)",
    "chitchat-sockjs": "**chitchat over SockJS websocket**",
    "chitchat-ws": "**chitchat over native websocket**",
    "chitchat-sockjs-gcdefault": "chitchat over SockJS, Python's default GC",
    "chitchat-sockjs-gcoff": "chitchat over SockJS, GC disabled",
    "chitchat-sockjs-hb60": "chitchat over SockJS, heartbeat 60 s",
    "chitchat-sockjs-nopresence": "chitchat over SockJS, presence off",
    "chitchat-ws-nopresence": "chitchat over native websocket, presence off",
    # --before DIR: an earlier commit's chitchat, run beside today's.
    "chitchat-sockjs-before": "chitchat over SockJS websocket, the --before checkout",
    "chitchat-ws-before": "chitchat over native websocket, the --before checkout",
}
#: sockjs-batched (``immediate_flush=False``) batches bursts as chitchat does: its
#: column compares batching with batching.
BASELINES = ["sockjs", "sockjs-batched", "sockjs-noflush", "tornado-ws", "socketio"]
SHORT = {"sockjs": "sockjs-tornado", "sockjs-batched": "sockjs-tornado batched",
         "sockjs-noflush": "sockjs-tornado batched",
         "tornado-ws": "Tornado WS", "socketio": "socketio",
         "chitchat-sockjs": "chitchat SockJS", "chitchat-ws": "chitchat native"}
CHITCHAT = ["chitchat-sockjs", "chitchat-ws"]


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    m = statistics.median(values)
    if len(values) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def ratio(a: float, b: float) -> str:
    if not (a == a and b == b) or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def rate_name(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}/s"


class Results:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.fan: dict[tuple[str, int, Any], list[dict[str, Any]]] = {}
        for r in data["fanout"]:
            self.fan.setdefault((r["kind"], r["n"], r["rate"]), []).append(r)
        self.storm: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.join_storm: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for s in data["storm"]:
            storms = self.join_storm if s.get("joins") else self.storm
            storms.setdefault((s["kind"], s["n"]), []).append(s)
        self.rooms: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        for r in data.get("rooms", []):
            self.rooms.setdefault((r["kind"], r["rooms"], r["size"]), []).append(r)
        self.rtt: dict[str, list[dict[str, Any]]] = {}
        for r in data["rtt"]:
            self.rtt.setdefault(r["kind"], []).append(r)

    def f(self, kind: str, n: int, rate: Any, key: str) -> float:
        """A fan-out median; a 0 (a run that delivered nothing) is no figure to divide by."""
        value = med([r.get(key, math.nan) for r in self.fan.get((kind, n, rate), [])])
        return value if value else math.nan

    def s(self, kind: str, key: str, n: int = 1000) -> float:
        return med([r.get(key, math.nan) for r in self.storm.get((kind, n), [])])

    def r(self, kind: str, key: str) -> float:
        return med([r[key] for r in self.rtt.get(kind, [])])


def storm_row(label: str, n: int, runs: list[dict[str, Any]]) -> str:
    """One row of a connect-storm table (medians, and the failures of every run)."""
    return (f"| {label} | {n:,} | {spread([r['rate'] for r in runs], ',.0f')} | "
            f"{spread([r.get('seconds', math.nan) for r in runs], '.1f')} | "
            f"{spread([r['p50_ms'] for r in runs], '.1f')} | "
            f"{spread([r['p99_ms'] for r in runs], '.1f')} | "
            f"{spread([r.get('cpu_s', math.nan) for r in runs], '.2f')} | "
            f"{spread([r['cpu_ms_per_conn'] for r in runs], '.3f')} | "
            f"{spread([r.get('rss_mb', math.nan) for r in runs], '.0f')} | "
            f"{spread([r['kb_per_conn'] for r in runs], '.1f')} | "
            f"{sum(r['failed'] for r in runs)} |")


def write_join_storms(w: Callable[[str], None], res: Results, kinds: list[str],
                      storm_sizes: list[int]) -> None:
    """The connect storm with joins, each row beside the plain storm's."""
    joins = next(iter(res.join_storm.values()))[0]["joins"]
    w(f"## Connect storm, each connection joining {joins} rooms\n")
    w(f"The connect storm again (same clients, same concurrency), but once welcomed each "
      f"connection sends {joins} `join` frames at once, for {joins} of 100 shared rooms "
      "(evenly spread: ~30 members a room per 1,000 connections), and counts as in once "
      "every join is acked. All in: the time until every connection had joined all its "
      "rooms; p50/p99: per connection, from its TCP connect to its last ack; CPU and RSS "
      "as in the plain storm, whose row is repeated above each. chitchat only: the "
      "baselines have no rooms of this shape to join.\n")
    w("| server | N | conn/s | all in, s | p50 ms | p99 ms | server CPU s | "
      "server CPU ms/conn | RSS MB | KB/conn | failed |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in storm_sizes:
        for kind in kinds:
            plain, joined = res.storm.get((kind, n)), res.join_storm.get((kind, n))
            if plain and joined:
                w(storm_row(LABEL[kind], n, plain))
            if joined:
                w(storm_row(f"{LABEL[kind]}, + {joins} joins", n, joined))
    w("")


def write_rooms(w: Callable[[str], None], res: Results) -> None:
    """Many small rooms, every one chatting, next to one big room."""
    w("## Many rooms: every room chatting at once\n")
    w("chitchat over native websocket only: the baselines' one broadcast group has no "
      "rooms of this shape (python-socketio has rooms; they are not measured here). Every "
      "client authorizes with `default: false` (no default room) and sends one `join` "
      "frame for its room, answered by an `ack`. Then **one sender per room** (its first "
      "member) sends into it as fast as its window allows: at most max(2, min(50, 50,000 "
      "/ connections, 1,000 / rooms)) messages without their `ack` (2 per room for 1,000 "
      "rooms, 50 in the one room of 1,000), for the 'max' run length; then every member must get "
      "all of its room's messages. A delivery: one message received by one member (its "
      "sender too: chitchat delivers a message to every member's connection); "
      "deliveries/s: from the first send to the last delivery; server us/delivery: its "
      "CPU over the run / deliveries (each message also costs an `ack` and a store "
      "append, so small rooms pay more per delivery). lost/dup/ooo, refused (sends the "
      "server answered with a `nack` or an `error`: never counted as delivered, and left "
      "out of what the members must get; 0 with the limits off) and closed (connections "
      "the server dropped): totals over every run of the case; other columns as in the "
      "fan-out table.\n")
    w("| server | rooms x members | connections | messages | deliveries/s | "
      "server us/delivery | p50 ms | p99 ms | lost | dup | ooo | refused | closed | "
      "server cpu (+wait) | "
      "client cpu | other | bound |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for (kind, rooms, size), rs in res.rooms.items():
        bounds = sorted({r["bound"] for r in rs})
        w(f"| {LABEL.get(kind, kind)} | {rooms:,} x {size:,} | {rooms * size:,} | "
          f"{spread([r['messages'] for r in rs], ',.0f')} | "
          f"{spread([r['dps'] for r in rs], ',.0f')} | "
          f"{spread([r['us_per_delivery'] for r in rs], '.2f')} | "
          f"{spread([r['p50_ms'] for r in rs], '.2f')} | "
          f"{spread([r['p99_ms'] for r in rs], '.2f')} | "
          f"{sum(r['lost'] for r in rs)} | {sum(r['dup'] for r in rs)} | "
          f"{sum(r['ooo'] for r in rs)} | {sum(r.get('refused', 0) for r in rs)} | "
          f"{sum(r.get('closed', 0) for r in rs)} | {med([r['server_util'] for r in rs]):.0%} "
          f"(+{med([r['server_wait'] for r in rs]):.0%}) | "
          f"{med([r['client_util'] for r in rs]):.0%} | "
          f"{med([r['other_cpus'] for r in rs]):.2f} | {'/'.join(bounds)} |")
    w("")


def write_reads(w: Callable[[str], None], runs: list[dict[str, Any]]) -> None:
    """markRead coalescing: the read frames sent, against one per read per member."""
    r0 = runs[0]
    w(f"## Read receipts: {r0['users']:,} members mark one room read\n")
    w(f"chitchat over native websocket. {r0['users']:,} clients in one room (joined as in "
      f"the many-rooms scenario); one of them posts {r0['rounds']} messages, then every "
      f"member sends a `read` frame, once a second for {r0['rounds']} s (round r: up to "
      "entry r). Without coalescing each read would be announced to every member: "
      "reads x members frames (the naive column). chitchat gathers the positions that "
      "moved and sends each member at most one `read` frame per room per second, carrying "
      "them all. Read frames: those the members received (frames/s: from the first read "
      "sent to the last frame received); positions: the `{user: seq}` entries they "
      "carried; server CPU: from the first read to the end (the reads' acks included), "
      "and per read sent; complete: members that saw every user's final position.\n")
    w("| server | members | reads sent | naive frames | read frames | read frames/s | "
      "positions | seconds | server CPU s | server us/read | complete |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        w(f"| {LABEL.get(r['kind'], r['kind'])} | {r['users']:,} | {r['reads']:,} | "
          f"{r['naive']:,} | {r['frames']:,} | {r['frames_per_s']:,.0f} | "
          f"{r['entries']:,} | {r['seconds']:.1f} | {r['cpu_s']:.2f} | "
          f"{r['us_per_read']:.0f} | {r['complete']:,}/{r['clients']:,} |")
    w("")


def render(data: dict[str, Any], analysis: Path) -> str:
    res = Results(data)
    cfg, env = data["config"], data["env"]
    storm_sizes = cfg.get("storm_sizes") or [cfg.get("storm_size", 1000)]
    kinds = [k for k in cfg["kinds"] if k in LABEL]
    sizes = cfg["sizes"]
    rates = cfg["rates"]
    out: list[str] = []
    w = out.append
    w("# chitchat benchmarks\n")
    w("Generated by `bash bench/run.sh`" + (" --quick" if cfg["quick"] else "")
      + f" on {env['date']} in {data.get('seconds', 0) / 60:.1f} minutes. Do not edit by "
      "hand: the command rewrites this file (the analysis at the end comes from "
      "`bench/analysis.md`).\n")
    w("`bash bench/run.sh --quick` is a smoke test of a few minutes (written to "
      "`bench/results/quick.md`); `--servers`, `--sizes`, `--rates`, `--reps` pick a "
      "subset; `--profile DIR` runs every server under py-spy; `--help` lists the rest. "
      "The servers are in `bench/servers/`, the load generator in `bench/loadgen.py` and "
      "`bench/wsclient.py`.\n")
    if cfg["quick"]:
        w("> **Quick mode**: one size, one run per case. Figures are a smoke test, not "
          "results.\n")
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    for key in ("cpu", "cores", "mem_gib", "kernel", "python", "tornado", "sockjs-tornado",
                "python-socketio", "python-engineio", "chitchat",
                "uvloop (load generator only)"):
        w(f"| {key} | {env.get(key, '-')} |")
    w("")
    w(f"Server pinned to cpu {cfg['server_cpu']} (`taskset`), load generator "
      f"({cfg['workers']} receiver processes + 1 sender process) on the other "
      f"{cfg['load_cpus']} cpu(s); loopback only. Every case runs {cfg['reps']} time(s): "
      "figures are medians, with (min-max) where there are several runs. A benchmark "
      "message is ~100 bytes of JSON (`{\"_r\":run,\"_s\":seq,\"_c\":sender clock,\"p\":pad}`); "
      f"chitchat wraps it in its Message (id, user, ts). The sender keeps at most "
      f"min({cfg['window']}, 50,000 / N) messages without their echo (chitchat refuses "
      "more than 100 waiting frames per connection), nor more than that many times N "
      "deliveries not yet made (the receivers count them in shared memory): the slower "
      "side sets the pace and no queue grows without bound. At a fixed rate each run lasts "
      f"{cfg['fixed_seconds']:g} s (half that for N > 1000); 'max' sends "
      f"as many messages as the window allows for {cfg['max_seconds']:g} s (at most "
      f"{cfg['max_deliveries']:,} deliveries in all); then every receiver must get all "
      "of them.\n")
    w("chitchat's benchmark server (`bench/servers/chitchat_server.py`) turns off the "
      "abuse limits a benchmark would trip: the per-user send rate and the per-connection "
      "frame rate (`send_rate=None`, `frame_rate=None`: a refused message never counts as "
      "delivered) and the per-user connection cap (`max_user_connections=None`), in every "
      "scenario (the rooms and read-receipt ones included). All else "
      "is chitchat's default, presence in the default room included (the baselines have "
      "no presence; the `presence off` storm row shows its cost).\n")

    # -- ratios ------------------------------------------------------------------------
    w("## chitchat / baseline\n")
    w("Ratios of medians. Throughput: higher is better; latency, memory, CPU: lower is "
      "better.\n")
    header = "| metric | " + " | ".join(
        f"{SHORT[c]} / {SHORT[b]}" for c in CHITCHAT if c in kinds for b in BASELINES
        if b in kinds) + " |"
    pairs = [(c, b) for c in CHITCHAT if c in kinds for b in BASELINES if b in kinds]
    w(header)
    w("|---" * (len(pairs) + 1) + "|")

    def row(name: str, get: Callable[[str], float]) -> None:
        w(f"| {name} | " + " | ".join(ratio(get(c), get(b)) for c, b in pairs) + " |")

    for n in sizes:
        row(f"fan-out max, deliveries/s, N={n}", lambda k, n=n: res.f(k, n, None, "dps"))
    for n in sizes:
        row(f"fan-out max, server CPU per delivery, N={n}",
            lambda k, n=n: res.f(k, n, None, "us_per_delivery"))
    for rate in [r for r in rates if r is not None]:
        for n in sizes:
            row(f"p99 latency at {rate:g} msg/s, N={n}",
                lambda k, n=n, rate=rate: res.f(k, n, rate, "p99_ms"))
    for n in storm_sizes if data["storm"] else []:
        row(f"connect+authorize rate, N={n}", lambda k, n=n: res.s(k, "rate", n))
        row(f"connect p99, N={n}", lambda k, n=n: res.s(k, "p99_ms", n))
        row(f"server CPU per connection, N={n}", lambda k, n=n: res.s(k, "cpu_ms_per_conn", n))
        row(f"RSS per idle authorized connection, N={n}",
            lambda k, n=n: res.s(k, "kb_per_conn", n))
    if data["rtt"]:
        row("round trip p50", lambda k: res.r(k, "p50_ms"))
        row("round trip p99", lambda k: res.r(k, "p99_ms"))
    w("")

    # -- targets -----------------------------------------------------------------------
    w("## Targets (chitchat over SockJS websocket, N=1000)\n")
    w("| target | measured | met |\n|---|---|---|")
    c, n = "chitchat-sockjs", 1000

    def target(name: str, value: float, limit: float, higher: bool, fmt: str) -> None:
        if value != value:
            w(f"| {name} | not measured | - |")
            return
        ok = value >= limit if higher else value <= limit
        w(f"| {name} | {format(value, fmt)} | {'yes' if ok else '**no**'} |")

    if (c, n, None) in res.fan:
        d = res.f(c, n, None, "dps")
        target("fan-out max >= 4x sockjs-tornado broadcast (deliveries/s)",
               d / res.f("sockjs", n, None, "dps"), 4, True, ".2f")
        target(">= 10x python-socketio (deliveries/s)",
               d / res.f("socketio", n, None, "dps"), 10, True, ".2f")
        u = res.f(c, n, None, "us_per_delivery")
        target("the same in server CPU per delivery: sockjs-tornado's / chitchat's >= 4",
               res.f("sockjs", n, None, "us_per_delivery") / u, 4, True, ".1f")
        target("python-socketio's / chitchat's >= 10",
               res.f("socketio", n, None, "us_per_delivery") / u, 10, True, ".1f")
    if (c, n, 20.0) in res.fan:
        target("p99 at 20 msg/s <= 0.6x sockjs-tornado's",
               res.f(c, n, 20.0, "p99_ms") / res.f("sockjs", n, 20.0, "p99_ms"), 0.6, False,
               ".2f")
    if data["storm"]:
        target("RSS per idle connection <= 1.2x sockjs-tornado's",
               res.s(c, "kb_per_conn") / res.s("sockjs", "kb_per_conn"), 1.2, False, ".2f")
        target("connect+authorize rate >= 2x python-socketio's",
               res.s(c, "rate") / res.s("socketio", "rate"), 2, True, ".2f")
        target("reconnect storm: server CPU per connect+authorize <= 0.5x python-socketio's",
               res.s(c, "cpu_ms_per_conn") / res.s("socketio", "cpu_ms_per_conn"), 0.5, False,
               ".2f")
        target("reconnect storm: connect+authorize rate >= bare sockjs-tornado's",
               res.s(c, "rate") / res.s("sockjs", "rate"), 1, True, ".2f")
    bad = [r for r in data["fanout"] if r["lost"] or r["dup"] or r["ooo"]]
    w(f"| lost / duplicated / out-of-order = 0 in every run | {len(bad)} run(s) with errors "
      f"| {'yes' if not bad else '**no**'} |")
    w("")

    # -- absolute fan-out --------------------------------------------------------------
    w("## Fan-out: one sender, N receivers in one room\n")
    w("Deliveries/s counts every message received by every receiver, from the first send "
      "to the last delivery. Server us/delivery: the server's CPU time over the run divided "
      "by the deliveries, a measure of its cost that does not depend on the load "
      "generator (1,000,000 / it is what the server would sustain on a whole core). "
      "Latency: receiver clock minus the sender clock carried in "
      "the message. lost/dup/ooo: totals over all runs of the case. Bound: the side that "
      f"needed >= {int(100 * 0.85)}% of its cores (`server`, or `CLIENT`: then the figure is "
      "a floor, not the server's limit); `-` means neither (a fixed rate). Other: cores' worth "
      "of CPU used on the machine by processes outside the benchmark during the run "
      "(noise; 0 on a quiet machine); +wait: the share of the run the server was ready "
      "to run but waited for its core (taken by such a process).\n")
    w("| server | N | rate | deliveries/s | server us/delivery | p50 ms | p99 ms | lost | dup "
      "| ooo | server cpu (+wait) | client cpu | other | bound |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        for rate in rates:
            for kind in kinds:
                runs = res.fan.get((kind, n, rate))
                if not runs:
                    continue
                bounds = sorted({r["bound"] for r in runs})
                w(f"| {LABEL[kind]} | {n} | {rate_name(rate)} | "
                  f"{spread([r['dps'] for r in runs], ',.0f')} | "
                  f"{spread([r.get('us_per_delivery', math.nan) for r in runs], '.2f')} | "
                  f"{spread([r['p50_ms'] for r in runs], '.2f')} | "
                  f"{spread([r['p99_ms'] for r in runs], '.2f')} | "
                  f"{sum(r['lost'] for r in runs)} | {sum(r['dup'] for r in runs)} | "
                  f"{sum(r['ooo'] for r in runs)} | "
                  f"{med([r['server_util'] for r in runs]):.0%} "
                  f"(+{med([r.get('server_wait', 0.0) for r in runs]):.0%}) | "
                  f"{med([r['client_util'] for r in runs]):.0%} | "
                  f"{med([r.get('other_cpus', 0.0) for r in runs]):.2f} | {'/'.join(bounds)} |")
    w("")

    if res.storm:
        sizes_text = " and ".join(f"{n:,}" for n in storm_sizes)
        w(f"## Connect storm: {sizes_text} clients connect and authorize\n")
        w(f"A restarted server meets its clients all at once: {cfg['concurrency']} "
          "handshakes in flight at a time until all are in (each load-generator process "
          "holds its share of the sockets). Authorized means: the chitchat `welcome`; the "
          "Socket.IO namespace `40` answer to a connect with an `auth` payload; for the "
          "bare servers, their answer to a first message naming the user. All in: the "
          "time until the last one was. CPU: the server's user+system time during the "
          "storm. RSS: the server's, 1 s after the storm; KB/conn: its growth from before "
          "the storm, per connection.\n")
        w("| server | N | conn/s | all in, s | p50 ms | p99 ms | server CPU s | "
          "server CPU ms/conn | RSS MB | KB/conn | failed |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in storm_sizes:
            for kind in kinds:
                runs = res.storm.get((kind, n))
                if runs:
                    w(storm_row(LABEL[kind], n, runs))
        w("")
    if res.join_storm:
        write_join_storms(w, res, kinds, storm_sizes)
    if res.rooms:
        write_rooms(w, res)
    if data.get("reads"):
        write_reads(w, data["reads"])
    if data.get("memory"):
        m0 = data["memory"][0]
        w(f"## Memory: {m0['cycles']:,} connect / authorize / disconnect cycles\n")
        w(f"One server; {cfg.get('memory_batch', 100)} cycles at a time, each a new user. "
          f"The server's RSS is read after the first {m0['mark']:,} cycles and at the end, "
          "each time once its connections are closed (its open file descriptors back to "
          "what they were). Live objects: the objects the garbage collector tracks after a "
          "full collection, counted again every 2 s until the count stops falling (timers "
          "that hold a closed connection for a while, such as presence's grace period, have "
          "run by then): what is still alive. No leak: the RSS at the end within 10% of the "
          f"{m0['mark']:,} mark, and the live objects back to about what they were.\n")
        w(f"| server | RSS at start MB | RSS after {m0['mark']:,} MB | RSS at end MB | "
          f"end / {m0['mark']:,} | within 10% | live objects start / {m0['mark']:,} / end | "
          "seconds | failed |")
        w("|---|---:|---:|---:|---:|---|---|---:|---:|")
        for m in data["memory"]:
            start, mark, end = (r / 1024 for r in m["rss_kb"])
            grew = end / mark if mark else math.nan
            w(f"| {LABEL.get(m['kind'], m['kind'])} | {start:.1f} | {mark:.1f} | {end:.1f} | "
              f"{grew:.3f} | {'yes' if grew <= 1.10 else '**no**'} | "
              f"{' / '.join(f'{o:,}' for o in m['objects'])} | {m['seconds']:.1f} | "
              f"{m['failed']} |")
        w("")
    if data["rtt"]:
        w(f"## Round trip: one client alone, send -> own message back "
          f"({cfg['rtt_count']} in a row per run)\n")
        w("| server | p50 ms | p99 ms |\n|---|---:|---:|")
        for kind in kinds:
            runs = res.rtt.get(kind)
            if runs:
                w(f"| {LABEL[kind]} | {spread([r['p50_ms'] for r in runs], '.3f')} | "
                  f"{spread([r['p99_ms'] for r in runs], '.3f')} |")
        w("")
    if data.get("gc"):
        w("## The cyclic GC in each server\n")
        w("Counted over the whole life of each fan-out server (connect storm, then every "
          "run at that size), with `gc.callbacks`. chitchat's server calls "
          "`chitchat.tune_gc()` once started, unless the row says otherwise.\n")
        w("| server | N | collections gen0 / gen1 / gen2 | longest pause gen0 / gen1 / gen2 "
          "ms | total ms | thresholds |")
        w("|---|---:|---|---|---:|---|")
        for g in data["gc"]:
            w(f"| {LABEL.get(g['kind'], g['kind'])} | {g['n']} | "
              f"{' / '.join(str(c) for c in g['count'])} | "
              f"{' / '.join(f'{x:.1f}' for x in g['longest_ms'])} | "
              f"{sum(g['total_ms']):.0f} | "
              f"{'off' if not g['enabled'] else tuple(g['threshold'])} |")
        w("")
    if analysis.exists():
        w(analysis.read_text().rstrip() + "\n")
    return "\n".join(out)


