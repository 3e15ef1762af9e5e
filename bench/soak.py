#!/usr/bin/env python
"""Soak benchmark: many streams open for a long time under steady traffic. Not a test.

    .venv/bin/python bench/soak.py                  # 500 streams, 10 messages/s, 10 minutes
    .venv/bin/python bench/soak.py --duration 60    # a one-minute try

What it asks: does anything grow while nothing changes? File descriptors of gunicorn's master
and workers, the workers' memory, Redis connections and memory, the events table. A leak of one
descriptor per reconnect, one Redis connection per stream or a few KB per message shows up here
as a slope, long before it takes a server down.

How: the setup of bench/fanout.py (a throwaway redis-server, a fresh SQLite database from the
migrations, users in group conversations, signed session cookies, gunicorn the production way
with two gevent workers, rate limits off), then:

1. its stream-reader process opens --streams streams (one per user) and keeps them open to the
   end, counting every `message-created` frame;
2. messages are sent open-loop at --rate per second, conversations taking turns, each from a
   member over its own keep-alive connection. Before the first sample every user sends once
   (a warm-up, not sampled), so each has the keep-alive connection a browser in use has: the
   samples then see the steady state;
3. churn: every sample period, --churn extra streams are opened (a second tab of some users)
   and the previous period's are closed: tabs reloaded and closed, which is where descriptors
   and subscriptions leak if they do;
4. every --sample-every seconds: open descriptors (/proc/<pid>/fd) of the master and each
   worker, each worker's RSS, Redis `connected_clients` and `used_memory`, rows in the events
   table, messages sent and frames delivered so far, and the CPU the rest of the machine used
   and the hypervisor stole in that window.

At the end it reports the first and last samples, the least-squares slope per minute, and a
verdict per measure: "flat" when the last sample is within the tolerance of the median of the
first three (descriptors and Redis clients +5, RSS +10 %), else "GROWS". It rewrites the
`soak` section of bench/RESULTS.md (fanout's sections and the text around them are kept).
"""

import argparse
import asyncio
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fanout  # noqa: E402 (the bench folder is not a package)
from fanout import (  # noqa: E402
    CLK_TCK,
    HOST,
    Bench,
    HTTPPool,
    ask,
    busy_ticks,
    get_request,
    post_message_request,
    rss_kb,
    steal_ticks,
    stream_process,
)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TOLERANCE = {"descriptors": 5, "redis clients": 5}  # absolute; RSS: 10 %


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Churn:
    """Extra streams opened for one sample period, then closed (raw sockets, as fanout's)."""

    def __init__(self, bench: Bench, count: int):
        self.bench, self.count = bench, count
        self.held: list[asyncio.StreamWriter] = []
        self.next_user = 0
        self.opened = self.failed = 0

    async def _open(self, user: int):
        bench = self.bench
        reader, writer = await asyncio.open_connection(HOST, bench.port)
        writer.write(get_request("/stream", bench.cookies[user], "text/event-stream", bench.port))
        data = b""
        while b": connected" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 30)
            if not chunk:
                raise OSError("closed before : connected")
            data += chunk
        return writer

    async def turn(self):
        for writer in self.held:
            writer.close()
        self.held = []
        users = [(self.next_user + i) % self.bench.users for i in range(self.count)]
        self.next_user += self.count
        for outcome in await asyncio.gather(
            *(self._open(u) for u in users), return_exceptions=True
        ):
            if isinstance(outcome, BaseException):
                self.failed += 1
            else:
                self.held.append(outcome)
                self.opened += 1

    def close(self):
        for writer in self.held:
            writer.close()


def events_rows(bench: Bench) -> int:
    path = bench.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def sample(bench: Bench, parent, sent: int, window) -> dict:
    busy, steal, seconds = window
    return {
        "t": time.time(),
        "master fds": fds(bench.gunicorn.pid),
        "worker fds": [fds(p) for p in bench.workers],
        "worker rss kb": [rss_kb(p) for p in bench.workers],
        "redis clients": bench.redis.info("clients")["connected_clients"] - 1,  # not ours
        "redis memory kb": bench.redis.info("memory")["used_memory"] // 1024,
        "events rows": events_rows(bench),
        "sent": sent,
        "delivered": ask(parent, "count")["delivered"],
        "other cpu %": 100.0 * busy / CLK_TCK / seconds,
        "stolen %": 100.0 * steal / CLK_TCK / seconds,
    }


async def soak(args, bench: Bench, parent) -> tuple[list[dict], dict]:
    pool = HTTPPool(HOST, bench.port)
    churn = Churn(bench, args.churn)
    c = args.conversations
    outcome = {"201": 0, "other": 0, "errors": []}

    async def fire(k: int, t: float):
        cid = k % c + 1
        members = bench.members(cid)
        user = members[(k // c) % len(members)]
        # The token fanout's stream reader times: b:<scheduled send ns>:<sequence>.
        body = f"b:{int(t * 1e9)}:{k} soak"
        raw = post_message_request(cid, bench.cookies[user], bench.csrf[user], body, bench.port)
        try:
            status, answer = await pool.request(raw, user)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            status, answer = 0, repr(e).encode()
        if status == 201:
            outcome["201"] += 1
        else:
            outcome["other"] += 1
            if len(outcome["errors"]) < 5:
                outcome["errors"].append(f"{status} {answer[:160]!r}")

    # Warm-up, not sampled: every user sends once, so each has its keep-alive connection (as
    # a browser in use has) before the first sample; what follows is the steady state.
    await fanout.open_loop(50, bench.users / 50, fire)
    outcome["warm-up"] = outcome["201"]
    samples = []
    traffic = asyncio.create_task(fanout.open_loop(args.rate, args.duration, fire))
    end = time.time() + args.duration
    while True:
        busy0, steal0, t0 = busy_ticks(), steal_ticks(), time.time()
        await churn.turn()
        await asyncio.sleep(max(0.0, min(args.sample_every, end - time.time()) - 0.5))
        await asyncio.sleep(0.5)  # let the last sends of the window land
        window = (busy_ticks() - busy0, steal_ticks() - steal0, time.time() - t0)
        samples.append(sample(bench, parent, outcome["201"], window))
        s = samples[-1]
        print(
            f"[{len(samples):3d}] fds master {s['master fds']} workers {s['worker fds']} "
            f"rss {s['worker rss kb']} KB redis {s['redis clients']} clients "
            f"{s['redis memory kb']} KB events {s['events rows']} sent {s['sent']} "
            f"delivered {s['delivered']} other {s['other cpu %']:.0f}% stolen "
            f"{s['stolen %']:.0f}%",
            flush=True,
        )
        if time.time() >= end - 1:
            break
    await traffic
    churn.close()
    await asyncio.sleep(2)  # the last sends' frames
    outcome["delivered"] = ask(parent, "count")["delivered"]
    outcome["churn opened"], outcome["churn failed"] = churn.opened, churn.failed
    return samples, outcome


def slope_per_minute(samples: list[dict], values: list[float]) -> float:
    ts = [(s["t"] - samples[0]["t"]) / 60 for s in samples]
    if len(ts) < 2:
        return 0.0
    mt, mv = statistics.fmean(ts), statistics.fmean(values)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (v - mv) for t, v in zip(ts, values, strict=True)) / den if den else 0.0


def measures(samples: list[dict]) -> dict[str, list[float]]:
    out = {"master descriptors": [s["master fds"] for s in samples]}
    for i in range(len(samples[0]["worker fds"])):
        out[f"worker {i + 1} descriptors"] = [s["worker fds"][i] for s in samples]
        out[f"worker {i + 1} RSS (KB)"] = [s["worker rss kb"][i] for s in samples]
    out["Redis clients"] = [s["redis clients"] for s in samples]
    out["Redis memory (KB)"] = [s["redis memory kb"] for s in samples]
    out["events rows"] = [s["events rows"] for s in samples]
    return out


def verdict(name: str, values: list[float]) -> str:
    base = statistics.median(values[:3])
    if name == "events rows":
        return "grows with traffic (pruned after EVENT_RETENTION_DAYS)"
    if "RSS" in name or "memory" in name:
        return "flat" if values[-1] <= base * 1.10 else "GROWS"
    limit = TOLERANCE["redis clients" if "Redis" in name else "descriptors"]
    return "flat" if values[-1] <= base + limit else "GROWS"


def report(args, samples: list[dict], outcome: dict, bench: Bench) -> str:
    duration = samples[-1]["t"] - samples[0]["t"]
    expected = outcome["201"] * bench.group_size  # every member's stream, the sender's too
    delivered = outcome["delivered"]
    rows = [
        "| measure | first | last | slope per minute | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, values in measures(samples).items():
        rows.append(
            f"| {name} | {values[0]:,} | {values[-1]:,} | "
            f"{slope_per_minute(samples, values):+.1f} | {verdict(name, values)} |"
        )
    other = [s["other cpu %"] for s in samples]
    stolen = [s["stolen %"] for s in samples]
    log = (bench.tmp / "gunicorn.log").read_text(errors="replace")
    lines = [
        f"{args.streams} streams ({bench.group_size} per conversation) held for "
        f"{duration / 60:.1f} minutes of samples, {args.rate:g} messages/s sent open-loop, "
        f"{args.churn} extra streams opened and closed every {args.sample_every:g} s "
        f"({outcome['churn opened']} opened in all, {outcome['churn failed']} failed), after a "
        f"warm-up of {outcome['warm-up']} sends (one per user, not sampled); "
        f"gunicorn with {args.workers} gevent workers, SQLite, Redis. {len(samples)} samples.",
        "",
        *rows,
        "",
        f"Sends: {outcome['201']:,} answered 201, {outcome['other']} otherwise "
        f"{outcome['errors'] or ''}. Frames delivered to the held streams: {delivered:,} of "
        f"{expected:,} expected ({100 * delivered / max(1, expected):.2f} %). Tracebacks in the "
        f"gunicorn log: {log.count('Traceback')}; failed publishes: "
        f"{log.count('could not publish')}.",
        "",
        f"The rest of the machine used {statistics.median(other):.0f} % of a core (median of "
        f"the windows, max {max(other):.0f} %); stolen by the hypervisor: median "
        f"{statistics.median(stolen):.0f} %, max {max(stolen):.0f} %.",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--churn", type=int, default=25, help="streams reopened per sample")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    # What fanout's Bench reads of its own arguments.
    args.database_url, args.heartbeat = None, None

    fanout.raise_nofile()
    bench = Bench(args)
    stream_proc = None
    try:
        bench.start_redis()
        bench.setup_data()
        bench.start_gunicorn()
        print(f"[setup] gunicorn on :{bench.port}, workers {bench.workers}", flush=True)
        parent, child = mp.get_context("fork").Pipe()
        stream_proc = mp.get_context("fork").Process(
            target=stream_process,
            args=(child, bench.port, bench.cookies, 100, False),
            daemon=True,
        )
        stream_proc.start()
        opened = ask(parent, "open", list(range(args.streams)))
        print(f"[streams] {opened['opened']}/{args.streams} open", flush=True)
        samples, outcome = asyncio.run(soak(args, bench, parent))
        body = report(args, samples, outcome, bench)
        print(body)
        if not args.no_write:
            fanout.write_results(RESULTS, "soak", "Soak: does anything grow? (bench/soak.py)", body)
    finally:
        if stream_proc is not None:
            stream_proc.kill()
        bench.stop()


if __name__ == "__main__":
    main()
