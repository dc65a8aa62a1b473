"""`herald serve --workers N`: throughput at 1 and 2 processes, and realtime through NOTIFY
or Redis.

    python -m bench.procs            # about 7 minutes
    python -m bench.procs --quick    # 1-second runs, small sizes: a smoke test

On fresh databases (in an embedded PostgreSQL of its own in bench/data/procs/, or
--database-url), seeded with SQL (`u0` owns --user-rows of --rows shared rows):

1. three servers at once, each on a database of its own seeded alike: `herald serve
   --workers 1`, `--workers 2`, and `--workers 2 --pin-cpus` (each process with its queue
   worker). For each figure (the inbox page of `u0`, 1-recipient sends to the --users other
   users in turn, sends to --hot-users of them), --runs turns: in each, every server gets a
   1-second run of GET /health and then a run of --seconds of the figure, with wrk at
   --connections, in an order that reverses every turn. Reported: the mean req/s over the
   turns, the median latencies, the ratio of the 2-process means to the 1-process one with
   the quartiles of the turns' own ratios, and the CPU share of each Herald process,
   PostgreSQL and wrk.

   Why turns of a few seconds, not fresh servers in rounds of 5-second runs: on the shared
   machines this runs on, a fixed loop of Python took 15 to 27 ms from one second to the
   next, and fresh 1-process servers a minute apart gave 1,495 and 2,521 sends/s for the
   same 5-second run, so two figures compare well only when measured seconds apart, many
   times. Separate databases, because every process listening on a database wakes for
   every NOTIFY there: the idle servers would pay for the measured one's events;
2. at 2 processes, realtime through PostgreSQL NOTIFY and then through Redis
   (HERALD_REDIS_URL, --redis-url): --sockets socket.io clients (websocket, one user each)
   connected from this process, --events 1-recipient sends to them at --concurrency, and the
   events delivered per second and the latency from each POST to its NEW_NOTIFICATION.

Writes its section into bench/RESULTS.md between `<!-- bench:procs -->` markers."""

import argparse
import asyncio
import contextlib
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
    health_seconds: float
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
    parser.add_argument("--seconds", type=float, help="length of each wrk run of a figure (2)")
    parser.add_argument("--runs", type=int, help="turns per figure (12)")
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
    parser.add_argument(
        "--database-name", help="its databases' prefix (herald_bench_procs[_quick]; _0 to _2)"
    )
    parser.add_argument("--results", type=Path, help="file to update (bench/RESULTS.md)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    rows = args.rows or (10_000 if quick else 100_000)
    user_rows = args.user_rows or (1_000 if quick else 10_000)
    shape = Shape(rows=rows, user_rows=user_rows, users=args.users or (1_000 if quick else 9_000))
    check(shape)
    return Options(
        shape=shape,
        seconds=args.seconds or (1.0 if quick else 2.0),
        warm_seconds=0.0 if quick else WARM_SECONDS,
        runs=args.runs or (1 if quick else 12),
        health_seconds=1.0,
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


@dataclass(frozen=True)
class Setup:
    """How one of the measured servers runs."""

    processes: int
    pinned: bool = False

    @property
    def label(self) -> str:
        return f"{self.processes}, pinned" if self.pinned else str(self.processes)

    def args(self) -> list[str]:
        return ["--workers", str(self.processes), *(["--pin-cpus"] if self.pinned else [])]


SETUPS = (Setup(1), Setup(2), Setup(2, pinned=True))


@dataclass(frozen=True)
class Served:
    setup: Setup
    url: str
    base: str
    pid: int
    keys: AppKeys


@dataclass
class Figure:
    """One route on one server: its runs (one per turn), the /health runs alternated with
    them, and the CPU seconds of each process over the route's runs."""

    name: str
    setup: Setup
    runs: list[wrk.Run] = field(default_factory=list)
    health: list[wrk.Run] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def median(self, attr: str, *, of_health: bool = False) -> float:
        runs = self.health if of_health else self.runs
        return statistics.median(getattr(r, attr) for r in runs) if runs else 0.0

    def mean_rate(self, *, of_health: bool = False) -> float:
        runs = self.health if of_health else self.runs
        return statistics.fmean(r.rate for r in runs) if runs else 0.0


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
    names = [f"{opts.database_name}_{n}" for n in range(len(SETUPS))]
    databases: list[tuple[str, AppKeys]] = []
    for name in names:
        url, made = fresh_app_database(server_url, name)
        asyncio.run(_seed(url, made.id, opts.shape))
        databases.append((url, AppKeys(made.api_key, made.api_secret)))
    figures: dict[tuple[Setup, str], Figure] = {}
    with contextlib.ExitStack() as stack:
        served = []
        for setup, (url, keys) in zip(SETUPS, databases, strict=True):
            base, proc = stack.enter_context(herald(url, args=setup.args()))
            served.append(Served(setup, url, base, proc.pid, keys))
        asyncio.run(_throughput(opts, served, figures))
    measured.figures = sorted(figures.values(), key=lambda f: SETUPS.index(f.setup))
    url, keys = databases[SETUPS.index(Setup(2))]
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
    for name in names:
        asyncio.run(drop(server_url, name))


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
    opts: Options, served: list[Served], figures: dict[tuple[Setup, str], Figure]
) -> None:
    """--runs turns of each figure on every server, after an untimed warm-up of each (none
    for --quick), added to `figures` (keyed by setup and figure, in the order they ran)."""
    postgres = Processes(postmaster_pid=await postmaster_pid(plain(served[0].url)))
    c = opts.connections

    async def health(s: Served, seconds: float) -> wrk.Run:
        return await wrk.run(f"{s.base}/health", label="/health", connections=c, seconds=seconds)

    async def inbox(s: Served, seconds: float) -> wrk.Run:
        user = {"X-ENGAGESPOT-API-KEY": s.keys.api_key, "X-ENGAGESPOT-USER-ID": BIG_USER}
        return await wrk.run(
            f"{s.base}/v3/notifications",
            label="inbox",
            connections=c,
            seconds=seconds,
            headers=user,
        )

    def sends(users: int) -> Callable[[Served, float], Awaitable[wrk.Run]]:
        async def go(s: Served, seconds: float) -> wrk.Run:
            backend = {
                "X-ENGAGESPOT-API-KEY": s.keys.api_key,
                "X-ENGAGESPOT-API-SECRET": s.keys.api_secret,
            }
            return await wrk.run(
                f"{s.base}/v3/notifications",
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
    # Warm every server and route, untimed: a fresh server's first requests open its
    # connections and plan its statements.
    if opts.warm_seconds:
        for s in served:
            for _, go in plan:
                await health(s, opts.warm_seconds)
                await go(s, opts.warm_seconds)
    for name, go in plan:
        for turn in range(opts.runs):
            progress(f"bench: {name}, turn {turn + 1}/{opts.runs}")
            # Reversed every other turn: no server always runs right after another.
            for s in served if turn % 2 == 0 else served[::-1]:
                figure = figures.setdefault((s.setup, name), Figure(name, s.setup))
                figure.health.append(await health(s, opts.health_seconds))
                server = Herald(s.pid)
                before_h, before_pg, before_wrk = server.cpu(), postgres.cpu(), _wrk_cpu()
                started = time.perf_counter()
                figure.runs.append(await go(s, opts.seconds))
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
        f"- Data: `{BIG_USER}` owns {opts.shape.user_rows:,} of {opts.shape.rows:,} rows, in "
        "each of three databases seeded alike, one per server: `herald serve --workers 1`, "
        "`--workers 2` and `--workers 2 --pin-cpus`, all three up at once, each process with "
        f"its queue worker (a child process). wrk at {opts.connections} connections, "
        f"{opts.runs} turns per figure: in each, every server gets a "
        f"{opts.health_seconds:g}-second /health run and then a {opts.seconds:g}-second run of "
        "the figure, in an order reversed every turn. req/s: the mean over the turns; "
        "latencies: the medians. wrk, Herald and PostgreSQL share the cores.",
        "",
        "| figure | processes | req/s | p50 ms | p99 ms | /health req/s | req/s ÷ /health "
        "| CPU share (cores) during the runs | CPU ms per request: Herald / postgres |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for fig in measured.figures:
        rate, health = fig.mean_rate(), fig.mean_rate(of_health=True)
        shares = ", ".join(
            f"{name} {seconds / fig.wall:.2f}" for name, seconds in fig.cpu.items() if fig.wall
        )
        done = sum(r.requests for r in fig.runs) or 1
        herald_ms = sum(v for k, v in fig.cpu.items() if k.startswith("herald")) * 1000 / done
        postgres_ms = fig.cpu.get("postgres", 0.0) * 1000 / done
        lines.append(
            f"| {fig.name} | {fig.setup.label} | {rate:,.0f} | {fig.median('p50'):.2f} "
            f"| {fig.median('p99'):.2f} | {health:,.0f} "
            f"| {rate / health if health else 0:.3f} | {shares} "
            f"| {herald_ms:.2f} / {postgres_ms:.2f} |"
        )
    lines.append("")
    for name in dict.fromkeys(f.name for f in measured.figures):
        of = {f.setup: f for f in measured.figures if f.name == name}
        one = of.get(SETUPS[0])
        if one is None or not one.mean_rate():
            continue
        said = []
        for setup in SETUPS[1:]:
            two = of.get(setup)
            if two is None:
                continue
            gain = two.mean_rate() / one.mean_rate()
            pairs = zip(one.runs, two.runs, strict=True)
            turns = sorted(b.rate / a.rate for a, b in pairs if a.rate)
            spread = (
                f" (the turns' own ratios: quartiles {_quartile(turns, 1):.2f} to "
                f"{_quartile(turns, 3):.2f})"
                if len(turns) >= 4
                else ""
            )
            pinned = " pinned" if setup.pinned else ""
            said.append(
                f"{setup.processes}{pinned} processes give {gain:.2f} times the req/s of 1{spread}"
            )
        lines.append(f"- {name}: " + "; ".join(said))
    if opts.hot_users:
        lines.append(
            f"- Sends to {opts.hot_users:,} users: the groups of both processes raise the "
            "same inbox counter rows, and each holds its rows' locks until it commits; those "
            f"to {opts.shape.users:,} users seldom share a row."
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


def _quartile(sorted_values: list[float], q: int) -> float:
    return statistics.quantiles(sorted_values, n=4, method="inclusive")[q - 1]


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
