#!/usr/bin/env python
"""Soak benchmark for Chipper's live updates (GET /stream): nothing may grow. Not a test.

    .venv/bin/python bench/soak.py                 # 500 streams, 10 messages/s, 10 minutes
    .venv/bin/python bench/soak.py --duration 60   # a short try (results still written)
    .venv/bin/python bench/soak.py --duration 60 --no-write --keep

Issue 14: "500 streams and steady traffic for 10 minutes; file descriptors, Redis connections
and memory do not grow". The machinery is bench/fanout.py's, imported (see its docstring):

1. A throwaway `redis-server` on a free port, a fresh SQLite database made by the migrations
   (or a throwaway PostgreSQL schema with --database-url), users and group conversations
   inserted directly (--streams users, --conversations groups of streams / conversations
   members each), one signed session cookie per user, and the app started the production way:
   `gunicorn -c gunicorn.conf.py wsgi:app` with WEB_CONCURRENCY=2 and RATELIMIT_ENABLED=0.
   fanout's warm-up touches every code path once per worker.
2. A separate load-generator process (fanout's raw-socket SSE reader, forked before this
   process opens any connection) opens one stream per user and keeps them open throughout.
   Every --sample-every seconds it closes --churn of them (5 %: tabs reloaded) and opens them
   again at once; a stream the server ends by itself is counted ("lost") and reopened then too.
3. Steady traffic: POST /conversations/<id>/messages open-loop at --rate per second (fanout's
   open_loop: scheduled times, no coordinated omission), conversations taking turns, senders
   being members taking turns, each over its own keep-alive connection (as a browser). It
   runs for --warmup seconds first (default 60 s: long enough for every user to have sent
   once, so every sender's keep-alive connection exists, and for a couple of churns) and then
   for --duration seconds, the measured part.
4. A sample at the start of the traffic and then every --sample-every seconds, taken just
   before that period's churn (so every sample is the same time after the last churn): open
   file descriptors of the gunicorn master and of each worker (/proc/<pid>/fd), each worker's
   VmRSS, Redis `connected_clients` (less this script's own connection) and `used_memory`,
   Redis keys, rows in the events table, messages sent and delivered so far, the
   send->delivery p99 of the deliveries read in that period, and the CPU the workers, the
   rest of the machine and the hypervisor (stolen) took in that period.
5. Growth, over the measured samples (t >= 0): first and last value, least-squares slope per
   minute, and a verdict: "does not grow" when the last sample is within a tolerance of the
   median of the first three (file descriptors +5, Redis clients +5, RSS and Redis memory
   +10 %), else "GROWS". File descriptors and RSS are judged for both workers together: the
   kernel hands each reopened stream to whichever worker accepts first, so the split between
   the workers drifts with churn while the sum does not.
6. After a drain: messages sent, deliveries expected vs delivered (a delivery is expected for
   every member whose stream was open at the message's scheduled send time and stayed open
   --close-margin seconds after it; deliveries to streams just opened or about to close are
   counted apart), duplicates, streams lost, Redis presence entries vs open streams, and the
   tracebacks and failed publishes in the gunicorn log (the first traceback is printed).

It prints the tables and rewrites the "## Soak" section of bench/RESULTS.md, between
`<!-- bench:soak -->` markers (--name changes the key); every other byte of the file is kept.
The machine line reads the commit from .git's files: this script runs no git command.

This is a 2-core box, load generator included, so latencies are noisy; the point is growth,
and each sample reports what the rest of the machine used. gunicorn and Redis die with this
script. Options: --help.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from fanout import (  # noqa: E402
    CLK_TCK,
    HOST,
    NOISE_LIMIT,
    Bench,
    HTTPPool,
    Sink,
    StreamProto,
    ask,
    children,
    cpu_percent,
    drain,
    fmt,
    get_request,
    open_loop,
    percentile,
    pids_cpu,
    post_message_request,
    raise_nofile,
    rss_kb,
    summarize_ms,
    warm_up,
    write_results,
)

# metric key -> (label, tolerance, relative?) for the verdicts
TOLERANCES = {
    "fds_workers": ("open file descriptors, both workers", 5, False),
    "fds_master": ("open file descriptors, gunicorn master", 5, False),
    "rss_workers_mb": ("RSS, both workers (MB)", 0.10, True),
    "redis_clients": ("Redis connections (connected_clients, less this script's)", 5, False),
    "redis_mb": ("Redis used_memory (MB)", 0.10, True),
}


# ---------------------------------------------------------------------------------------------
# The stream-reader process: fanout's StreamProto and Sink, plus closing and reopening some


class ChurnSink(Sink):
    """fanout's Sink; a stream closed on purpose (a reload) is not "lost"."""

    def __init__(self, on_lost):
        super().__init__()
        self.on_lost = on_lost

    def lost(self, proto):
        if not self.stopping and not getattr(proto, "deliberate", False):
            self.on_lost(proto)


def soak_stream_process(conn, port: int, cookies: list[str], concurrency: int, fmt_json: bool):
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_soak_streams(conn, port, cookies, concurrency, fmt_json))


async def _soak_streams(conn, port, cookies, concurrency, fmt_json):
    loop = asyncio.get_running_loop()
    n = len(cookies)
    protos: list[StreamProto | None] = [None] * n
    intervals: list[list[list]] = [[] for _ in range(n)]  # per stream: [opened_ns, closed_ns]
    lost: list[tuple[int, int]] = []  # (stream, closed_ns) of streams the server ended

    def on_lost(proto):
        i = proto.idx
        if protos[i] is proto:
            protos[i] = None
            intervals[i][-1][1] = proto.closed_ns
            lost.append((i, proto.closed_ns))

    sink = ChurnSink(on_lost)
    commands: asyncio.Queue = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    path = "/stream?format=json" if fmt_json else "/stream"
    cursor = 0

    async def open_one(i: int, sem: asyncio.Semaphore, open_lat: list, errors: list):
        req = get_request(path, cookies[i], "text/event-stream", port)
        async with sem:
            t0 = time.time_ns()
            proto = None
            try:
                _, proto = await loop.create_connection(
                    lambda: StreamProto(i, req, sink), HOST, port
                )
                await asyncio.wait_for(proto.ready, 60)
            except (OSError, TimeoutError) as e:
                if proto is not None and proto.transport:
                    proto.deliberate = True
                    proto.transport.close()
                errors.append(repr(e))
                return
            intervals[i].append([proto.opened_ns, None])
            if proto.closed_ns:  # ended between `: connected` and here
                intervals[i][-1][1] = proto.closed_ns
                lost.append((i, proto.closed_ns))
                return
            protos[i] = proto
            open_lat.append(proto.opened_ns - t0)

    async def open_many(indices) -> dict:
        sem = asyncio.Semaphore(concurrency)
        open_lat: list[int] = []
        errors: list[str] = []
        t0 = time.time()
        await asyncio.gather(*(open_one(i, sem, open_lat, errors) for i in indices))
        return {
            "asked": len(indices),
            "opened": len(open_lat),
            "errors": errors[:5],
            "n_errors": len(errors),
            "seconds": time.time() - t0,
            "open_ms": summarize_ms(open_lat),
        }

    def new_deliveries() -> dict:
        nonlocal cursor
        end = len(sink.seq)
        out = {
            "idx": sink.idx[cursor:end].tobytes(),
            "seq": sink.seq[cursor:end].tobytes(),
            "lat": sink.lat[cursor:end].tobytes(),
            "open": sum(1 for p in protos if p is not None),
            "lost": len(lost),
        }
        cursor = end
        return out

    while True:
        cmd, arg = await commands.get()
        if cmd == "open":
            conn.send(await open_many(arg))
        elif cmd == "churn":
            # A reloaded tab: its stream closes and a new one opens straight away. Streams the
            # server ended by themselves since the last period reopen now too.
            closed = 0
            for i in arg:
                p = protos[i]
                if p is not None:
                    p.deliberate = True
                    p.transport.close()
                    intervals[i][-1][1] = time.time_ns()
                    protos[i] = None
                    closed += 1
            reopen = sorted(set(arg) | {i for i in range(n) if protos[i] is None})
            conn.send({"closed": closed} | await open_many(reopen))
        elif cmd == "sample":
            conn.send(new_deliveries())
        elif cmd == "count":
            conn.send({"delivered": len(sink.seq)})
        elif cmd == "finish":
            sink.stopping = True
            out = new_deliveries()
            for p in protos:
                if p is not None and p.transport:
                    p.transport.close()
            conn.send(out | {"intervals": intervals, "lost_list": lost})
            await asyncio.sleep(0.2)
            return


# ---------------------------------------------------------------------------------------------
# Sampling


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Sampler:
    def __init__(self, bench: Bench, conn, pids: dict[str, int]):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        self.bench = bench
        self.conn = conn
        self.pids = pids
        self.engine = sa.create_engine(bench.db_url, poolclass=NullPool)
        self.count_events = sa.text("SELECT count(*) FROM events")
        self.cpu_prev = pids_cpu(pids)
        self.t_prev = time.time()
        self.worker_pids_seen: set[int] = set(bench.workers)
        # every delivery read so far: (stream, message seq, latency ns)
        self.idx, self.seq, self.lat = array("i"), array("q"), array("q")

    def events_rows(self) -> int | None:
        try:
            with self.engine.connect() as c:
                return c.execute(self.count_events).scalar_one()
        except Exception:  # noqa: BLE001 (a locked SQLite file: skip this sample's count)
            return None

    def take(self, sent: dict, fired: int) -> dict:
        bench = self.bench
        workers = children(bench.gunicorn.pid)
        self.worker_pids_seen.update(workers)
        info = bench.redis.info()
        data = ask(self.conn, "sample")
        for name, arr in (("idx", self.idx), ("seq", self.seq), ("lat", self.lat)):
            arr.frombytes(data[name])
        window = array("q")
        window.frombytes(data["lat"])
        now = time.time()
        cpu_now = pids_cpu(self.pids)
        cpu = cpu_percent(self.cpu_prev, cpu_now, now - self.t_prev)
        self.cpu_prev, self.t_prev = cpu_now, now
        fds = [fd_count(p) for p in workers]
        rss = [rss_kb(p) for p in workers]
        return {
            "wall": now,
            "workers": workers,
            "streams_open": data["open"],
            "lost": data["lost"],
            "fds_master": fd_count(bench.gunicorn.pid),
            "fds": fds,
            "fds_workers": sum(x or 0 for x in fds),
            "rss": rss,
            "rss_workers_mb": sum(rss) / 1024,
            "redis_clients": info["connected_clients"] - 1,  # less this script's own
            "redis_mb": info["used_memory"] / 2**20,
            "redis_keys": bench.redis.dbsize(),
            "events": self.events_rows(),
            "fired": fired,
            "sent_ok": sum(1 for v in sent.values() if v[2] == 201),
            "delivered": len(self.seq),
            "window_n": len(window),
            "window_p99_ms": percentile(sorted(window), 99) / 1e6 if window else float("nan"),
            "cpu_workers": sum(v for k, v in cpu.items() if k.startswith("worker")),
            "cpu_rest": cpu.get("rest of the machine", 0.0),
            "cpu_stolen": cpu.get("stolen by the hypervisor", 0.0),
        }


# ---------------------------------------------------------------------------------------------
# The run


def sample_times(warmup: float, duration: float, every: float) -> list[float]:
    """Seconds relative to the end of the warm-up: -warmup, ..., 0, every, ..., duration."""
    times = {-warmup, 0.0, float(duration)}
    t = -warmup
    while t < duration:
        times.add(round(t, 6))
        t += every
    t = 0.0
    while t < duration:
        times.add(round(t, 6))
        t += every
    return sorted(x for x in times if -warmup <= x <= duration)


async def soak(bench: Bench, pool: HTTPPool, conn, sampler: Sampler, args) -> dict:
    c = args.conversations
    sent: dict[int, tuple[int, int, int]] = {}  # seq -> (cid, scheduled send ns, status)
    post_lat: list[int] = []
    post_errors: list[str] = []
    fired = 0
    port = bench.port

    async def fire(k: int, t: float):
        # as fanout's fan-out phase: conversations take turns, and their members
        nonlocal fired
        fired += 1
        cid = k % c + 1
        members = bench.members(cid)
        sender = members[(k // c) % len(members)]
        send_ns = int(t * 1e9)
        raw = post_message_request(
            cid, bench.cookies[sender], bench.csrf[sender], f"b:{send_ns}:{k} soak", port
        )
        try:
            status, body = await pool.request(raw, sender)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            status, body = 0, repr(e).encode()
        post_lat.append(time.time_ns() - send_ns)
        if status != 201 and len(post_errors) < 5:
            post_errors.append(f"{status} {body[:200]!r}")
        sent[k] = (cid, send_ns, status)

    rng = random.Random(args.seed)
    n_churn = max(1, round(args.streams * args.churn)) if args.churn > 0 else 0
    start = time.time() + 0.5
    total = args.warmup + args.duration
    traffic = asyncio.create_task(open_loop(args.rate, total, fire, start))
    samples, churns = [], []
    times = sample_times(args.warmup, args.duration, args.sample_every)
    for j, t in enumerate(times):
        await asyncio.sleep(max(0.0, start + args.warmup + t - time.time()))
        s = await asyncio.to_thread(sampler.take, sent, fired)
        s["t"] = t
        samples.append(s)
        print(
            f"[sample] t={t:+5.0f} s  streams {s['streams_open']}  fds master "
            f"{s['fds_master']} workers {s['fds']}  RSS {[round(x / 1024, 1) for x in s['rss']]}"
            f" MB  Redis clients {s['redis_clients']} mem {s['redis_mb']:.2f} MB keys "
            f"{s['redis_keys']}  events {s['events']}  sent {s['sent_ok']} delivered "
            f"{s['delivered']}  p99 {fmt(s['window_p99_ms'])} ms  CPU workers "
            f"{s['cpu_workers']:.0f}% rest {s['cpu_rest']:.0f}% stolen {s['cpu_stolen']:.0f}%",
            flush=True,
        )
        if j < len(times) - 1 and n_churn:
            ch = await asyncio.to_thread(
                ask, conn, "churn", rng.sample(range(args.streams), n_churn)
            )
            churns.append(ch)
            if ch["n_errors"] or ch["asked"] != n_churn:
                print(
                    f"[churn] closed {ch['closed']}, reopened {ch['opened']}/{ch['asked']} "
                    f"({ch['n_errors']} errors {ch['errors']})",
                    flush=True,
                )
    gen = await traffic
    return {
        "samples": samples,
        "churns": churns,
        "sent": sent,
        "post_lat": post_lat,
        "post_errors": post_errors,
        "generator": gen,
    }


def run(args) -> dict:
    nofile = raise_nofile()
    bench = Bench(args)
    result: dict = {"nofile": nofile}
    stream_proc = None
    try:
        print(f"[setup] temp dir {bench.tmp}", flush=True)
        bench.start_redis()
        bench.setup_data()
        print(
            f"[setup] {bench.users:,} users, {args.conversations:,} conversations of "
            f"{bench.group_size} ({bench.dialect}) in {bench.info['setup_s']:.1f} s",
            flush=True,
        )
        bench.start_gunicorn()
        port = bench.port
        print(f"[setup] gunicorn on :{port}, workers {bench.workers}", flush=True)

        # The stream reader is forked before this process opens any connection of its own.
        parent, child = mp.get_context("fork").Pipe()
        stream_proc = mp.get_context("fork").Process(
            target=soak_stream_process,
            args=(child, port, bench.cookies, args.open_concurrency, args.format == "json"),
            daemon=True,
        )
        stream_proc.start()

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        pool = HTTPPool(HOST, port, limit=args.max_inflight)
        loop.run_until_complete(warm_up(bench, pool, port))

        pids = {f"worker {i + 1}": pid for i, pid in enumerate(bench.workers)}
        pids |= {
            "gunicorn master": bench.gunicorn.pid,
            "redis": bench.redis_proc.pid,
            "streams (client)": stream_proc.pid,
            "sender (client)": os.getpid(),
        }
        sampler = Sampler(bench, parent, pids)
        before = sampler.take({}, 0)
        before["t"] = None
        print(
            f"[sample] 0 streams: fds master {before['fds_master']} workers {before['fds']}, "
            f"RSS {before['rss']} KB, Redis clients {before['redis_clients']}",
            flush=True,
        )
        opened = ask(parent, "open", list(range(args.streams)))
        print(
            f"[streams] {opened['opened']:,}/{args.streams:,} open in {opened['seconds']:.1f} s "
            f"({opened['n_errors']} errors {opened['errors']})",
            flush=True,
        )
        print(
            f"[soak] {args.rate:g} msg/s: {args.warmup:g} s warm-up, then {args.duration:g} s "
            f"measured; {args.churn:.0%} of the streams reopened every {args.sample_every:g} s",
            flush=True,
        )
        t_soak = time.time()
        r = loop.run_until_complete(soak(bench, pool, parent, sampler, args))
        soak_s = time.time() - t_soak
        sent = r["sent"]
        n_ok = sum(1 for v in sent.values() if v[2] == 201)
        drained = loop.run_until_complete(
            drain(parent, len(sampler.seq) + n_ok * bench.group_size, args.drain)
        )

        # Presence: every stream is open, so every user should be online, and the open-stream
        # sets should hold one entry per open stream (no marks left by reloaded tabs).
        now = time.time()
        pipe = bench.redis.pipeline()
        for uid in range(1, bench.users + 1):
            pipe.zcount(f"chipper:online:{uid}", now, "+inf")
            pipe.zcard(f"chipper:online:{uid}")
            pipe.zcard(f"chipper:visible:{uid}")
        counts = pipe.execute()
        online = sum(1 for x in counts[0::3] if x)
        online_entries = sum(counts[1::3])
        visible_entries = sum(counts[2::3])

        data = ask(parent, "finish")
        stream_proc.join(timeout=10)
        loop.close()
        for name, arr in (("idx", sampler.idx), ("seq", sampler.seq), ("lat", sampler.lat)):
            arr.frombytes(data[name])
        open_at_end = data["open"]

        # ---- deliveries: expected when the stream was open at the scheduled send time and
        # stayed open close_margin s after it
        intervals = data["intervals"]
        margin = int(args.close_margin * 1e9)
        expected_pairs = set()
        for k, (cid, send_ns, status) in sent.items():
            if status != 201:
                continue
            for m in bench.members(cid):
                for opened_ns, closed_ns in intervals[m]:
                    if opened_ns <= send_ns and (closed_ns is None or closed_ns >= send_ns + margin):
                        expected_pairs.add((k, m))
                        break
        seen, dups, lat_all, extra = set(), 0, [], 0
        for i, s, ns in zip(sampler.idx, sampler.seq, sampler.lat, strict=True):
            if s not in sent:
                continue
            key = (s, i)
            if key in seen:
                dups += 1
                continue
            seen.add(key)
            lat_all.append(ns)
            if key not in expected_pairs:
                extra += 1
        delivered_expected = len(seen & expected_pairs)

        log_text = (bench.tmp / "gunicorn.log").read_text(errors="replace")
        lines = log_text.splitlines()
        first_tb = []
        for n, line in enumerate(lines):
            if "Traceback" in line:
                first_tb = lines[max(0, n - 1) : n + 25]
                break
        churns = r["churns"]
        result.update(
            before=before,
            opened=opened,
            samples=r["samples"],
            soak_s=soak_s,
            drained_s=drained,
            scheduled=len(sent),
            sent_ok=n_ok,
            post_errors=r["post_errors"],
            post_latency=summarize_ms(r["post_lat"]),
            generator=r["generator"],
            expected=len(expected_pairs),
            delivered_expected=delivered_expected,
            delivered_extra=extra,
            duplicates=dups,
            latency=summarize_ms(lat_all),
            churn_periods=len(churns),
            churn_closed=sum(ch["closed"] for ch in churns),
            churn_reopened=sum(ch["opened"] for ch in churns),
            churn_asked=sum(ch["asked"] for ch in churns),
            churn_errors=sum(ch["n_errors"] for ch in churns),
            churn_error_samples=[e for ch in churns for e in ch["errors"]][:5],
            churn_open_ms=summarize_ms(
                [x for ch in churns for x in [ch["open_ms"].get("p99", 0) * 1e6] if ch["opened"]]
            ),
            lost=len(data["lost_list"]),
            open_at_end=open_at_end,
            online=online,
            online_entries=online_entries,
            visible_entries=visible_entries,
            worker_pids_seen=sorted(sampler.worker_pids_seen),
            tracebacks=log_text.count("Traceback"),
            publish_failures=log_text.count("could not publish"),
            first_traceback=first_tb,
            dialect=bench.dialect,
            group_size=bench.group_size,
        )
        return result
    finally:
        if stream_proc is not None and stream_proc.is_alive():
            stream_proc.kill()
        bench.stop()
        if args.keep:
            print(f"[teardown] kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Report


def slope_per_minute(ts: list[float], ys: list[float]) -> float:
    xs = [t / 60 for t in ts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def growth(r) -> list[dict]:
    measured = [s for s in r["samples"] if s["t"] >= 0]
    rows = []
    for key, (label, tol, relative) in TOLERANCES.items():
        ts = [s["t"] for s in measured]
        ys = [s[key] for s in measured]
        base = statistics.median(ys[:3])
        delta = ys[-1] - base
        limit = base * tol if relative else tol
        rows.append(
            {
                "key": key,
                "label": label,
                "first": ys[0],
                "last": ys[-1],
                "base": base,
                "delta": delta,
                "slope": slope_per_minute(ts, ys) if len(ys) > 1 else 0.0,
                "tolerance": f"+{tol:.0%}" if relative else f"+{tol}",
                "ok": delta <= limit,
            }
        )
    return rows


def _v(x, key) -> str:
    if key.endswith("_mb"):
        return f"{x:,.1f}"
    return f"{x:,.1f}" if isinstance(x, float) and x != int(x) else f"{int(x):,}"


def report(args, r) -> tuple[str, str, str]:
    """The growth table, the totals table and the samples table, in Markdown."""
    g = growth(r)
    gtable = "\n".join(
        [
            "| metric | first (t=0) | last | last - median of first 3 | slope per minute "
            "| tolerance | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        + [
            f"| {x['label']} | {_v(x['first'], x['key'])} | {_v(x['last'], x['key'])} "
            f"| {x['delta']:+,.1f} | {x['slope']:+,.2f} | {x['tolerance']} "
            f"| {'does not grow' if x['ok'] else '**GROWS**'} |"
            for x in g
        ]
    )
    measured = [s for s in r["samples"] if s["t"] >= 0]
    ev = [s["events"] for s in measured if s["events"] is not None]
    keys = [s["redis_keys"] for s in measured]
    b = r["before"]
    rows = [
        (
            "streams open at the start / at the end",
            f"{r['opened']['opened']:,} / {r['open_at_end']:,} of {args.streams:,}",
        ),
        (
            "churn: reloads (stream closed, new one opened)",
            f"{r['churn_closed']:,} closed and {r['churn_reopened']:,} / {r['churn_asked']:,} "
            f"reopened in {r['churn_periods']} periods ({r['churn_errors']} errors)",
        ),
        ("streams the server ended by itself (lost, then reopened)", f"{r['lost']:,}"),
        (
            "messages sent (201) / scheduled",
            f"{r['sent_ok']:,} / {r['scheduled']:,} at {args.rate:g}/s over "
            f"{args.warmup + args.duration:g} s (warm-up included)",
        ),
        (
            "deliveries delivered / expected",
            f"**{r['delivered_expected']:,} / {r['expected']:,}** (duplicates "
            f"{r['duplicates']}; {r['delivered_extra']:,} more to streams that opened just "
            f"before or closed within {args.close_margin:g} s after the send)",
        ),
        (
            "send->delivery p50 / p99 / p99.9 / max, whole run",
            " / ".join(fmt(r["latency"].get(k)) for k in ("p50", "p99", "p999", "max")) + " ms",
        ),
        (
            "POST send p50 / p99 / max",
            " / ".join(fmt(r["post_latency"].get(k)) for k in ("p50", "p99", "max")) + " ms",
        ),
        (
            "load generator lateness p99 / max",
            f"{fmt(r['generator']['lag_p99_ms'])} / {fmt(r['generator']['lag_max_ms'])} ms",
        ),
        (
            "with 0 streams (after warm-up): fds master / workers, RSS, Redis clients",
            f"{b['fds_master']} / {' + '.join(str(x) for x in b['fds'])}, "
            f"{' + '.join(f'{x / 1024:.1f}' for x in b['rss'])} MB, {b['redis_clients']}",
        ),
        (
            "events rows, first / last measured sample",
            f"{ev[0]:,} / {ev[-1]:,} (grow by design: one per message, pruned after "
            "EVENT_RETENTION_DAYS)"
            if ev
            else "-",
        ),
        ("Redis keys, first / last measured sample", f"{keys[0]:,} / {keys[-1]:,}"),
        (
            "Redis presence at the end: users online / open-stream entries / visible entries",
            f"{r['online']:,} / {r['online_entries']:,} / {r['visible_entries']:,} "
            f"(streams open: {r['open_at_end']:,})",
        ),
        (
            "gunicorn worker processes seen",
            f"{len(r['worker_pids_seen'])} ({'no restart' if len(r['worker_pids_seen']) == args.workers else 'a worker was restarted'})",
        ),
        (
            "tracebacks / 'could not publish' in the gunicorn log",
            f"{r['tracebacks']} / {r['publish_failures']}",
        ),
    ]
    ttable = "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    noisy = [s for s in r["samples"][1:] if s["cpu_rest"] + s["cpu_stolen"] > NOISE_LIMIT]
    if noisy:
        worst = max(s["cpu_rest"] + s["cpu_stolen"] for s in noisy)
        ttable += (
            f"\n\nIn {len(noisy)} of {len(r['samples']) - 1} periods the rest of the machine "
            f"(or the hypervisor) took more than {NOISE_LIMIT} % of a core, up to {worst:.0f} %: "
            "latencies are not representative."
        )
    head = (
        "| t (s) | streams | fds master | fds workers | RSS workers (MB) | Redis clients "
        "| Redis MB | Redis keys | events | sent | delivered | p99 in period (ms) "
        "| CPU % workers / rest / stolen |"
    )
    srows = []
    for s in r["samples"]:
        srows.append(
            f"| {s['t']:+.0f}{' (warm-up)' if s['t'] < 0 else ''} | {s['streams_open']} "
            f"| {s['fds_master']} | {' + '.join(str(x) for x in s['fds'])} = {s['fds_workers']} "
            f"| {' + '.join(f'{x / 1024:.1f}' for x in s['rss'])} | {s['redis_clients']} "
            f"| {s['redis_mb']:.2f} | {s['redis_keys']:,} | {fmt(s['events'])} "
            f"| {s['sent_ok']:,} | {s['delivered']:,} | {fmt(s['window_p99_ms'])} "
            f"| {s['cpu_workers']:.0f} / {s['cpu_rest']:.0f} / {s['cpu_stolen']:.0f} |"
        )
    stable = "\n".join([head, "|" + "---|" * 13] + srows)
    return gtable, ttable, stable


def commit_from_files() -> str:
    """HEAD's commit, read from .git's files (no git command: another session may be using
    the checkout)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:7]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line[:7]
    except OSError:
        pass
    return "?"


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?"
            )
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"commit {commit_from_files()} (plus the working tree's uncommitted changes)"
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--streams", type=int, default=500, help="SSE streams, one user each (500)")
    p.add_argument(
        "--conversations", type=int, default=100, help="group conversations (default 100)"
    )
    p.add_argument("--rate", type=float, default=10, help="messages per second (default 10)")
    p.add_argument(
        "--duration", type=float, default=600, help="measured seconds, after the warm-up (600)"
    )
    p.add_argument(
        "--warmup", type=float, default=60, help="seconds of traffic before t=0 (default 60)"
    )
    p.add_argument(
        "--sample-every", type=float, default=30, help="seconds between samples (default 30)"
    )
    p.add_argument(
        "--churn",
        type=float,
        default=0.05,
        help="share of the streams closed and reopened every period (default 0.05)",
    )
    p.add_argument(
        "--close-margin",
        type=float,
        default=10,
        help="a stream must stay open this long after a send to be owed it (default 10 s)",
    )
    p.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL: a throwaway schema is created in it (default: SQLite in a temp dir)",
    )
    p.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default 2)")
    p.add_argument("--format", choices=["html", "json"], default="html", help="stream format")
    p.add_argument("--open-concurrency", type=int, default=100, help="streams opened at once")
    p.add_argument("--max-inflight", type=int, default=1000, help="cap on sender connections")
    p.add_argument("--drain", type=float, default=30, help="max seconds for late deliveries")
    p.add_argument(
        "--heartbeat", type=float, default=0, help="STREAM_HEARTBEAT (default: the app's)"
    )
    p.add_argument("--seed", type=int, default=14, help="seed for which streams are reloaded")
    p.add_argument("--name", default="soak", help="section key in RESULTS.md (default soak)")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument("--note", default="", help="a paragraph added to the RESULTS.md section")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (gunicorn, redis logs)")
    args = p.parse_args(argv)
    if args.streams % args.conversations:
        p.error("--streams must be a multiple of --conversations")
    if args.sample_every <= 0 or args.duration < args.sample_every:
        p.error("--duration must be at least one --sample-every")
    return args


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    script = Path(sys.argv[0]).resolve()
    command = (
        f"cd {ROOT} && .venv/bin/python "
        + " ".join(
            [str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]]
            + sys.argv[1:]
        )
    )
    r = run(args)
    gtable, ttable, stable = report(args, r)
    print()
    print(gtable)
    print()
    print(ttable)
    print()
    print(stable)
    if r["post_errors"]:
        print("\nfailed sends (first 5):\n  " + "\n  ".join(r["post_errors"]))
    if r["churn_error_samples"]:
        print("\nfailed reopens (first 5):\n  " + "\n  ".join(r["churn_error_samples"]))
    if r["first_traceback"]:
        print("\nfirst traceback in the gunicorn log:\n  " + "\n  ".join(r["first_traceback"]))
    if args.no_write:
        return
    db = "PostgreSQL" if r["dialect"] == "postgresql" else "SQLite"
    title = (
        f"Soak: {args.streams:,} streams over {args.conversations:,} conversations, "
        f"{args.rate:g} messages/s for {args.duration:g} s (+{args.warmup:g} s warm-up), "
        f"{args.churn:.0%} of the streams reopened every {args.sample_every:g} s, {db}"
    )
    if args.name != "soak":
        title += f" [{args.name}]"
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2][2:]
    body = (
        f"Machine: {machine()}.  \n"
        f"Command: `{command}`  \n"
        f"Server: `gunicorn -c gunicorn.conf.py wsgi:app`, {args.workers} gevent workers, "
        f"WORKER_CONNECTIONS={args.streams + 1000}, Redis {redis_version}, "
        f"stream format {args.format}. Method: `bench/soak.py`'s docstring.\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + gtable
        + "\n\n"
        + ttable
        + "\n\nSamples (each just before that period's reloads; t=0 is the end of the "
        "warm-up):\n\n"
        + stable
        + "\n"
    )
    if r["first_traceback"]:
        body += "\nFirst traceback in the gunicorn log:\n\n```\n"
        body += "\n".join(r["first_traceback"]) + "\n```\n"
    write_results(Path(args.results), args.name, title, body)
    print(f"\nwrote {args.results} (section {args.name})")


if __name__ == "__main__":
    main()
