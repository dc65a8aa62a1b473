"""`herald serve --workers N`: throughput at 1 and 2 processes, and realtime through NOTIFY
or Redis.

    python -m bench.procs            # about 6 minutes
    python -m bench.procs --quick    # 1-second runs, small sizes: a smoke test

On a fresh database (an embedded PostgreSQL of its own in bench/data/procs/, or
--database-url), seeded with SQL (`u0` owns --user-rows of --rows shared rows):

1. in --runs rounds, each a fresh `herald serve --workers 1` and then a fresh `--workers 2`
   (each process with its queue worker): one run of --seconds of the inbox page of `u0`, of
   1-recipient sends to the --users other users in turn, and of sends to --hot-users of
   them, with wrk at --connections, each run alternated with a run of GET /health at the same
   connection count; the medians over the rounds, with the CPU share of each Herald process,
   PostgreSQL and wrk. Rounds, not every 1-process run before every 2-process one: on a
   shared machine the speed drifts over minutes (two full runs half an hour apart gave 1.08
   and 0.98 for the sends), and drift then falls on both counts alike;
2. at 2 processes, realtime through PostgreSQL NOTIFY and then through Redis
   (HERALD_REDIS_URL, --redis-url): --sockets socket.io clients (websocket, one user each)
   connected from this process, --events 1-recipient sends to them at --concurrency, and the
   events delivered per second and the latency from each POST to its NEW_NOTIFICATION.

Writes its section into bench/RESULTS.md between `<!-- bench:procs -->` markers."""

import argparse
import asyncio
import os
import random
import secrets
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import socketio

from bench import report, wrk
from bench.load import Processes
from bench.seed import BIG_USER, Shape, check, finish, progress, rebuild_counters, seed
from bench.server import (
    AppKeys,
    asyncpg_url,
    drop,
    exclusive,
    fresh_app_database,
    herald,
    plain,
    postgres_server,
    postmaster_pid,
)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data" / "procs"
RESULTS = ROOT / "bench" / "RESULTS.md"
MARK_BEGIN = "<!-- bench:procs -->"
MARK_END = "<!-- /bench:procs -->"
TICK = os.sysconf("SC_CLK_TCK")
WARM_SECONDS = 2.0


@dataclass(frozen=True)
class Options:
    shape: Shape
    seconds: float
    warm_seconds: float  # each route's untimed run on a fresh server (none for --quick)
    runs: int
    connections: int
    hot_users: int
    sockets: int
    events: int
    concurrency: int
    redis_url: str
    database_url: str | None
    database_name: str
    results: Path | None


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.procs", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="1-second runs, small sizes")
    parser.add_argument("--seconds", type=float, help="length of each wrk run (5)")
    parser.add_argument("--runs", type=int, help="runs per figure (3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--rows", type=int, help="shared notification rows (100,000)")
    parser.add_argument("--user-rows", type=int, help="rows of u0 (10,000)")
    parser.add_argument("--users", type=int, help="users besides u0, the sends' recipients (9,000)")
    parser.add_argument(
        "--hot-users", type=int, default=100, help="recipients of the hot-spot sends (100; 0: none)"
    )
    parser.add_argument("--sockets", type=int, help="realtime clients (100)")
    parser.add_argument("--events", type=int, help="sends to them per transport (2,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="sends at once (16)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", help="a PostgreSQL server instead of pgserver")
    parser.add_argument("--database-name", help="its database (herald_bench_procs[_quick])")
    parser.add_argument("--results", type=Path, help="file to update (bench/RESULTS.md)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    rows = args.rows or (10_000 if quick else 100_000)
    user_rows = args.user_rows or (1_000 if quick else 10_000)
    shape = Shape(rows=rows, user_rows=user_rows, users=args.users or (1_000 if quick else 9_000))
    check(shape)
    return Options(
        shape=shape,
        seconds=args.seconds or (1.0 if quick else 5.0),
        warm_seconds=0.0 if quick else min(args.seconds or 5.0, WARM_SECONDS),
        runs=args.runs or (1 if quick else 3),
        connections=args.connections,
        hot_users=min(args.hot_users, shape.users),
        sockets=args.sockets or (20 if quick else 100),
        events=args.events or (200 if quick else 2_000),
        concurrency=args.concurrency,
        redis_url=args.redis_url,
        database_url=asyncpg_url(args.database_url) if args.database_url else None,
        database_name=args.database_name
        or ("herald_bench_procs_quick" if quick else "herald_bench_procs"),
        results=args.results or (None if quick else RESULTS),
    )


@dataclass
class Figure:
    """One route at one process count: its runs, the /health runs alternated with them, and
    the CPU seconds of each process over the route's runs."""

    name: str
    processes: int
    runs: list[wrk.Run] = field(default_factory=list)
    health: list[wrk.Run] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def median(self, attr: str, *, of_health: bool = False) -> float:
        runs = self.health if of_health else self.runs
        return statistics.median(getattr(r, attr) for r in runs) if runs else 0.0


@dataclass(frozen=True)
class Delivery:
    transport: str
    sent: int
    delivered: int
    seconds: float
    latencies: list[float]  # ms, sorted
    herald_cpu: float  # seconds, all Herald processes, while sending and delivering
    postgres_cpu: float

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        rank = max(1, min(len(self.latencies), round(q / 100 * len(self.latencies))))
        return self.latencies[rank - 1]


@dataclass
class Measured:
    figures: list[Figure] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    if not wrk.available():
        raise SystemExit("bench.procs needs wrk (apt-get install wrk)")
    command = shlex.join(["python", "-m", "bench.procs", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.now(UTC)
    with (
        postgres_server(opts.database_url, DATA_DIR) as server_url,
        exclusive(server_url, opts.database_name),
    ):
        _run(opts, server_url, command, started)


def _run(opts: Options, server_url: str, command: str, started: datetime) -> None:
    measured = Measured(load_before=_loadavg())
    url, made = fresh_app_database(server_url, opts.database_name)
    asyncio.run(_seed(url, made.id, opts.shape))
    keys = AppKeys(made.api_key, made.api_secret)
    figures: dict[tuple[int, str], Figure] = {}
    for round_ in range(opts.runs):
        for count in (1, 2):
            with herald(url, args=["--workers", str(count)]) as (base, proc):
                step = f"round {round_ + 1}/{opts.runs}, {count} process(es)"
                asyncio.run(_throughput(opts, url, base, proc.pid, count, keys, figures, step))
    measured.figures = [figures[key] for key in sorted(figures, key=lambda k: k[0])]
    for transport, env in (
        ("NOTIFY", {}),
        ("Redis", {"HERALD_REDIS_URL": opts.redis_url, "HERALD_REDIS_CHANNEL": _channel()}),
    ):
        with herald(url, args=["--workers", "2"], extra_env=env) as (base, proc):
            delivery = _realtime(opts, base, keys, transport, Herald(proc.pid), url)
            measured.deliveries.append(asyncio.run(delivery))
    measured.load_after = _loadavg()
    machine = asyncio.run(report.machine(plain(url)))
    text = markdown(opts, command, started, machine, measured)
    print(text, flush=True)
    if opts.results is not None:
        update(opts.results, text)
        progress(f"bench: wrote {opts.results}")
    asyncio.run(drop(server_url, opts.database_name))


async def _seed(url: str, app_id: int, shape: Shape) -> None:
    conn = await asyncpg.connect(plain(url), command_timeout=3600)
    try:
        await seed(conn, app_id=app_id, shape=shape, extra_sql=[])
        await rebuild_counters(conn)
        await finish(conn)
    finally:
        await conn.close()


def _channel() -> str:
    return "herald-bench-" + secrets.token_hex(4)


class Herald:
    """CPU seconds of a `herald serve` process and each of its serving children."""

    def __init__(self, parent: int):
        self.parent = parent

    def pids(self) -> dict[str, int]:
        kids = sorted(_children(self.parent))
        named = {"herald parent": self.parent}
        if len(kids) > 1:
            named |= {f"herald {i + 1}": pid for i, pid in enumerate(kids)}
        else:
            named = {"herald": self.parent}
        return named

    def cpu(self) -> dict[str, float]:
        return {name: _cpu_of(pid) for name, pid in self.pids().items()}


async def _throughput(
    opts: Options,
    url: str,
    base: str,
    parent: int,
    count: int,
    keys: AppKeys,
    figures: dict[tuple[int, str], Figure],
    step: str,
) -> None:
    """One run of each figure at `count` processes, after an untimed warm-up of each (none
    for --quick), added to `figures` (keyed by process count and figure, in the order they
    first ran)."""
    postgres = Processes(postmaster_pid=await postmaster_pid(plain(url)))
    server = Herald(parent)
    user = {"X-ENGAGESPOT-API-KEY": keys.api_key, "X-ENGAGESPOT-USER-ID": BIG_USER}
    backend = {"X-ENGAGESPOT-API-KEY": keys.api_key, "X-ENGAGESPOT-API-SECRET": keys.api_secret}
    c = opts.connections

    async def health(seconds: float) -> wrk.Run:
        return await wrk.run(f"{base}/health", label="/health", connections=c, seconds=seconds)

    async def inbox(seconds: float) -> wrk.Run:
        return await wrk.run(
            f"{base}/v3/notifications",
            label="inbox",
            connections=c,
            seconds=seconds,
            headers=user,
        )

    def sends(users: int) -> Callable[[float], Awaitable[wrk.Run]]:
        async def go(seconds: float) -> wrk.Run:
            return await wrk.run(
                f"{base}/v3/notifications",
                label="sends",
                connections=c,
                seconds=seconds,
                headers=backend,
                script=wrk.SEND_SCRIPT,
                script_args=[str(users)],
            )

        return go

    plan = [
        (f"inbox page of {BIG_USER}", inbox),
        (f"1-recipient sends to {opts.shape.users:,} users", sends(opts.shape.users)),
    ]
    if opts.hot_users:
        # Few recipients: the groups of both processes lock the same counter rows.
        plan.append((f"1-recipient sends to {opts.hot_users:,} users", sends(opts.hot_users)))
    # Warm every process and route, untimed: a fresh server's first requests open its
    # connections and plan its statements.
    if opts.warm_seconds:
        for _, go in plan:
            await health(opts.warm_seconds)
            await go(opts.warm_seconds)
    for name, go in plan:
        figure = figures.setdefault((count, name), Figure(name, count))
        progress(f"bench: {step}, {name}")
        figure.health.append(await health(opts.seconds))
        before_h, before_pg, before_wrk = server.cpu(), postgres.cpu(), _wrk_cpu()
        started = time.perf_counter()
        figure.runs.append(await go(opts.seconds))
        figure.wall += time.perf_counter() - started
        after_h, after_pg = server.cpu(), postgres.cpu()
        for proc, seconds in after_h.items():
            figure.cpu[proc] = figure.cpu.get(proc, 0.0) + seconds - before_h.get(proc, 0.0)
        spent_pg = (after_pg.postgres or 0.0) - (before_pg.postgres or 0.0)
        figure.cpu["postgres"] = figure.cpu.get("postgres", 0.0) + spent_pg
        figure.cpu["wrk"] = figure.cpu.get("wrk", 0.0) + _wrk_cpu() - before_wrk


async def _realtime(
    opts: Options, base: str, keys: AppKeys, transport: str, server: Herald, url: str
) -> Delivery:
    """Connect the sockets, send to them, and time each POST to its event."""
    postgres = Processes(postmaster_pid=await postmaster_pid(plain(url)))
    arrived: dict[str, float] = {}
    got_all = asyncio.Event()
    clients: list[socketio.AsyncClient] = []

    def recorder() -> Any:
        async def on_new(data: dict[str, Any]) -> None:
            arrived[data["notification"]["title"]] = time.perf_counter()
            if len(arrived) >= opts.events:
                got_all.set()

        return on_new

    progress(f"bench: {transport}: connecting {opts.sockets} sockets")
    for i in range(opts.sockets):
        client = socketio.AsyncClient(reconnection=False)
        client.on("NEW_NOTIFICATION", recorder())
        query = urlencode({"apiKey": keys.api_key, "userId": f"rt{i}"})
        await client.connect(f"{base}?{query}", transports=["websocket"], wait_timeout=30)
        clients.append(client)
    sent: dict[str, float] = {}
    headers = {"X-ENGAGESPOT-API-KEY": keys.api_key, "X-ENGAGESPOT-API-SECRET": keys.api_secret}
    rng = random.Random(11)
    progress(f"bench: {transport}: {opts.events} sends at concurrency {opts.concurrency}")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as api:
            queue = list(range(opts.events))

            async def sender() -> None:
                while queue:
                    n = queue.pop()
                    title = f"rt {n}"
                    body = {
                        "notification": {"title": title},
                        "sendTo": {"recipients": [f"rt{rng.randrange(opts.sockets)}"]},
                    }
                    sent[title] = time.perf_counter()
                    response = await api.post("/v3/notifications", json=body, headers=headers)
                    if response.status_code != 202:
                        raise RuntimeError(f"send: {response.status_code} {response.text}")

            before_h, before_pg = sum(server.cpu().values()), postgres.cpu().postgres or 0.0
            first = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(opts.concurrency)))
            try:
                await asyncio.wait_for(got_all.wait(), timeout=30)
            except TimeoutError:
                progress(f"bench: {transport}: {len(arrived)} of {opts.events} events arrived")
            spent_h = sum(server.cpu().values()) - before_h
            spent_pg = (postgres.cpu().postgres or 0.0) - before_pg
    finally:
        for client in clients:
            await client.disconnect()
    last = max(arrived.values(), default=first)
    latencies = sorted((arrived[t] - sent[t]) * 1000 for t in arrived if t in sent)
    return Delivery(
        transport, opts.events, len(arrived), last - first, latencies, spent_h, spent_pg
    )


def markdown(
    opts: Options,
    command: str,
    started: datetime,
    machine: report.Machine,
    measured: Measured,
) -> str:
    lines = [
        MARK_BEGIN,
        f"## More processes (`bench/procs.py`): {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine.line()}",
        f"- Load average (1/5/15 min) before: {measured.load_before}; after: {measured.load_after}",
        f"- Data: `{BIG_USER}` owns {opts.shape.user_rows:,} of {opts.shape.rows:,} rows. "
        f"wrk at {opts.connections} connections, {opts.runs} runs of {opts.seconds:g} s per "
        "figure, each alternated with a /health run; medians. The runs go in rounds: in each, a "
        "fresh `herald serve --workers 1` runs every figure once, then a fresh `--workers 2`. "
        "Each process has its queue worker (a child process); wrk, Herald and PostgreSQL share "
        "the cores.",
        "",
        "| figure | processes | req/s | p50 ms | p99 ms | /health req/s | req/s ÷ /health "
        "| CPU share (cores) during the runs | CPU ms per request: Herald / postgres |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for fig in measured.figures:
        rate, health = fig.median("rate"), fig.median("rate", of_health=True)
        shares = ", ".join(
            f"{name} {seconds / fig.wall:.2f}" for name, seconds in fig.cpu.items() if fig.wall
        )
        done = sum(r.requests for r in fig.runs) or 1
        herald_ms = sum(v for k, v in fig.cpu.items() if k.startswith("herald")) * 1000 / done
        postgres_ms = fig.cpu.get("postgres", 0.0) * 1000 / done
        lines.append(
            f"| {fig.name} | {fig.processes} | {rate:,.0f} | {fig.median('p50'):.2f} "
            f"| {fig.median('p99'):.2f} | {health:,.0f} "
            f"| {rate / health if health else 0:.3f} | {shares} "
            f"| {herald_ms:.2f} / {postgres_ms:.2f} |"
        )
    for name in dict.fromkeys(f.name for f in measured.figures):
        one = [f for f in measured.figures if f.name == name and f.processes == 1]
        two = [f for f in measured.figures if f.name == name and f.processes == 2]
        if one and two and one[0].median("rate"):
            gain = two[0].median("rate") / one[0].median("rate")
            lines.append(f"\n- {name}: 2 processes give {gain:.2f} times the req/s of 1")
    if opts.hot_users:
        lines.append(
            f"\n- Sends to {opts.hot_users:,} users: the groups of both processes raise the "
            "same inbox counter rows, and each holds its rows' locks until it commits; those "
            f"to {opts.shape.users:,} users seldom share a row. Between the two, the difference "
            "is that sharing plus the run-to-run noise of this machine."
        )
    lines += [
        "",
        f"Realtime at 2 processes: {opts.sockets} socket.io clients (websocket, one user each) "
        f"in the bench process, {opts.events} 1-recipient sends to them at concurrency "
        f"{opts.concurrency}; latency from the start of each POST to its NEW_NOTIFICATION.",
        "",
        "| transport | events delivered | events/s | p50 ms | p99 ms "
        "| CPU ms per event: Herald / postgres |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for d in measured.deliveries:
        rate = d.delivered / d.seconds if d.seconds > 0 else 0.0
        lines.append(
            f"| {d.transport} | {d.delivered} of {d.sent} | {rate:,.0f} "
            f"| {d.percentile(50):.1f} | {d.percentile(99):.1f} "
            f"| {d.herald_cpu * 1000 / max(1, d.delivered):.2f} "
            f"/ {d.postgres_cpu * 1000 / max(1, d.delivered):.2f} |"
        )
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def update(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip("\n")
        path.write_text(head + text + ("\n" + tail if tail else ""))
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + text)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _wrk_cpu() -> float:
    """CPU seconds of this process's reaped children: every wrk run so far."""
    times = os.times()
    return times.children_user + times.children_system


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
