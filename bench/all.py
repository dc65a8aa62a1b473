"""The bench of issue 11 in one run against one server: every figure as a ratio to /health.

    python -m bench.all            # (make bench) 1,000,000 shared rows; about 6 minutes
    python -m bench.all --quick    # small sizes and 1-second runs, for a smoke test

One `herald serve` process (with its in-process queue worker) on a fresh database, driven by
`wrk` on 127.0.0.1. Each figure is the median of --runs runs of --seconds each, every run of
the measured route alternated with a run of GET /health at the same connection count, so
that a ratio compares two things measured under the same conditions:

- throughput at 32 connections: /health, 1-recipient sends, the inbox page of `u0`, who
  owns 100,000 of the 1,000,000 shared rows;
- the inbox page of users owning 1k, 10k, 100k (`u0`) and 1M rows, at 32 connections;
- p99 at 4 connections: /health idle, the inbox page, and /health while the worker fans out
  a send to a 100,000-subscriber topic (a new fan-out starts whenever one ends).

The database is seeded with SQL (generate_series), never through the API: about a minute.
By default it lives in an embedded PostgreSQL of its own (pgserver, bench/data/all/), so that
the other databases on a shared server (tests, other benches) do not share its WAL,
checkpoints and buffers; --database-url uses a server you name instead."""

import argparse
import asyncio
import functools
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench import report, wrk
from bench.load import Processes
from bench.seed import (
    BIG_USER,
    Shape,
    check,
    finish,
    progress,
    rebuild_counters,
    seed,
    seed_sized,
    seed_topic,
)
from bench.server import (
    AppKeys,
    app_keys,
    beside,
    drop,
    exclusive,
    fresh_app_database,
    given_server,
    herald,
    plain,
    postgres_server,
    postmaster_pid,
)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data" / "all"
RESULTS = ROOT / "bench" / "RESULTS.md"
MARK_BEGIN = "<!-- bench:all -->"
MARK_END = "<!-- /bench:all -->"
TOPIC = "everyone"
FINISHED = ("done", "cancelled", "failed")


@dataclass(frozen=True)
class Options:
    shape: Shape
    sizes: dict[str, int]  # identifier -> rows, besides u0
    subscribers: int
    seconds: float
    runs: int
    connections: int
    low_connections: int
    database_url: str | None
    database_name: str
    results: Path | None
    keep: bool
    reuse: bool
    quick: bool


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="small sizes, 1-second runs")
    parser.add_argument("--seconds", type=float, help="length of each wrk run (5)")
    parser.add_argument("--runs", type=int, help="runs per figure, alternated with /health (3)")
    parser.add_argument("--connections", type=int, default=32, help="for throughput (32)")
    parser.add_argument("--database-url", help="a PostgreSQL server instead of pgserver")
    parser.add_argument("--database-name", help="recreated (herald_bench_all[_quick])")
    parser.add_argument("--results", type=Path, help="file to update (bench/RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept by --keep, unseeded"
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    if quick:
        shape = Shape(rows=10_000, user_rows=1_000, users=100)
        sizes = {"k1": 100, "k10": 300, "m1": 3_000}
        subscribers = 2_000
    else:
        shape = Shape(rows=1_000_000, user_rows=100_000, users=9_000)
        sizes = {"k1": 1_000, "k10": 10_000, "m1": 1_000_000}
        subscribers = 100_000
    check(shape)
    return Options(
        shape=shape,
        sizes=sizes,
        subscribers=subscribers,
        seconds=args.seconds or (1.0 if quick else 5.0),
        runs=args.runs or (1 if quick else 3),
        connections=args.connections,
        low_connections=4,
        database_url=given_server(args.database_url),
        database_name=args.database_name
        or ("herald_bench_all_quick" if quick else "herald_bench_all"),
        results=args.results or (None if quick else RESULTS),
        keep=bool(args.keep or args.reuse),
        reuse=bool(args.reuse),
        quick=quick,
    )


@dataclass
class Figure:
    """One measured route, its /health runs alternated with it, and the medians."""

    name: str
    runs: list[wrk.Run] = field(default_factory=list)
    health: list[wrk.Run] = field(default_factory=list)

    def median(self, attr: str, *, of_health: bool = False) -> float:
        runs = self.health if of_health else self.runs
        return statistics.median(getattr(r, attr) for r in runs) if runs else 0.0


@dataclass
class Measured:
    figures: dict[str, Figure] = field(default_factory=dict)
    fanouts_done: int = 0
    fanouts_started: int = 0
    runs_ended_in_fanout: int = 0
    fanout_rows_per_s: list[float] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    seed_seconds: float = 0.0
    table_rows: int = 0


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    if not wrk.available():
        raise SystemExit("bench.all needs wrk (apt-get install wrk)")
    command = report.command_line("bench.all", argv)
    started = datetime.now(UTC)
    with (
        postgres_server(opts.database_url, DATA_DIR) as server_url,
        exclusive(server_url, opts.database_name),
    ):
        _run(opts, server_url, command, started)


def _run(opts: Options, server_url: str, command: str, started: datetime) -> None:
    measured = Measured(load_before=_uptime())
    if opts.reuse:
        url = beside(server_url, opts.database_name)
    else:
        url, made = fresh_app_database(server_url, opts.database_name)
        measured.seed_seconds = asyncio.run(_seed(url, made.id, opts))
    app = asyncio.run(_app(url))
    with herald(url) as (base, proc):
        asyncio.run(_measure(opts, url, base, proc.pid, app, measured))
    measured.load_after = _uptime()
    machine = asyncio.run(report.machine(plain(url)))
    text = markdown(opts, command, started, machine, measured)
    print(text, flush=True)
    if opts.results is not None:
        update(opts.results, text)
        progress(f"bench: wrote {opts.results}")
    if not opts.keep:
        asyncio.run(drop(server_url, opts.database_name))


async def _seed(url: str, app_id: int, opts: Options) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(plain(url), command_timeout=3600)
    try:
        await seed(conn, app_id=app_id, shape=opts.shape, extra_sql=[])
        await seed_sized(conn, app_id=app_id, sizes=opts.sizes)
        await seed_topic(conn, app_id=app_id, identifier=TOPIC, subscribers=opts.subscribers)
        await rebuild_counters(conn)
        await finish(conn)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _app(url: str) -> AppKeys:
    keys = await app_keys(url)
    assert keys is not None, "the bench database has no app 'bench'"
    return keys


def _uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def _measure(
    opts: Options, url: str, base: str, server_pid: int, app: AppKeys, measured: Measured
) -> None:
    dsn = plain(url)
    processes = Processes(server_pid=server_pid, postmaster_pid=await postmaster_pid(dsn))
    user = {"X-ENGAGESPOT-API-KEY": app.api_key}
    backend = {"X-ENGAGESPOT-API-KEY": app.api_key, "X-ENGAGESPOT-API-SECRET": app.api_secret}
    conn = await asyncpg.connect(dsn)
    try:
        measured.table_rows = await conn.fetchval("SELECT count(*) FROM notifications")
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for who in [BIG_USER, *opts.sizes]:
                await _verify(client, conn, {**user, "X-ENGAGESPOT-USER-ID": who}, who)

        async def health(c: int) -> wrk.Run:
            return await wrk.run(
                f"{base}/health",
                label=f"GET /health c={c}",
                connections=c,
                seconds=opts.seconds,
                processes=processes,
            )

        def inbox(who: str, c: int) -> Callable[[], Awaitable[wrk.Run]]:
            async def go() -> wrk.Run:
                return await wrk.run(
                    f"{base}/v3/notifications",
                    label=f"inbox {who} c={c}",
                    connections=c,
                    seconds=opts.seconds,
                    headers={**user, "X-ENGAGESPOT-USER-ID": who},
                    processes=processes,
                )

            return go

        def sends(users: int) -> Callable[[], Awaitable[wrk.Run]]:
            async def go() -> wrk.Run:
                return await wrk.run(
                    f"{base}/v3/notifications",
                    label=f"sends c={opts.connections}",
                    connections=opts.connections,
                    seconds=opts.seconds,
                    headers=backend,
                    script=wrk.SEND_SCRIPT,
                    script_args=[str(users)],
                    processes=processes,
                )

            return go

        c, low = opts.connections, opts.low_connections
        # Reads first: sends and fan-outs add rows (and dirty the visibility map).
        plan: list[tuple[str, Callable[[], Awaitable[wrk.Run]], int]] = [
            (f"inbox {BIG_USER} ({_share(opts)}) c={c}", inbox(BIG_USER, c), c),
            *(
                (f"inbox {who} ({n:,} rows) c={c}", inbox(who, c), c)
                for who, n in opts.sizes.items()
            ),
            (f"inbox {BIG_USER} c={low}", inbox(BIG_USER, low), low),
            (f"1-recipient sends c={c}", sends(opts.shape.users), c),
            # Every send to one user: its counter row is the hot spot.
            (f"1-recipient sends, all to one user, c={c}", sends(1), c),
        ]
        # One warm-up of each route, untimed, so no run pays for first requests.
        for _name, go, conns in plan:
            await wrk.run(f"{base}/health", label="warm", connections=conns, seconds=1)
            await go()
        for name, go, conns in plan:
            figure = measured.figures.setdefault(name, Figure(name))
            for r in range(opts.runs):
                progress(f"bench: {name}: run {r + 1}/{opts.runs}")
                figure.health.append(await health(conns))
                figure.runs.append(await go())
        await _under_fanout(opts, base, backend, conn, health, measured)
    finally:
        await conn.close()


async def _verify(
    client: httpx.AsyncClient, conn: asyncpg.Connection, headers: dict[str, str], who: str
) -> None:
    """The page must report what count(*) says, so the figures measure the real thing."""
    page = (await client.get("/v3/notifications", headers=headers)).json()
    total, unseen = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
        "count(*) FILTER (WHERE deleted_at IS NULL AND seen_at IS NULL AND clicked_at IS NULL) "
        "FROM notifications n JOIN users u ON u.id = n.user_id WHERE u.identifier = $1",
        who,
    )
    got = (page["pagination"]["totalCount"], page["unreadCount"], len(page["data"]))
    if got != (total, unseen, min(15, total)):
        raise RuntimeError(f"inbox of {who}: {got} != count(*) {(total, unseen)}")


async def _under_fanout(
    opts: Options,
    base: str,
    backend: dict[str, str],
    conn: asyncpg.Connection,
    health: Callable[[int], Awaitable[wrk.Run]],
    measured: Measured,
) -> None:
    """/health at 4 connections while the worker fans out to the topic, back to back."""
    low = opts.low_connections
    figure = measured.figures.setdefault(
        f"/health c={low} during a {opts.subscribers:,}-recipient fan-out",
        Figure(f"/health c={low} during fan-out"),
    )
    body = {"notification": {"title": "Everyone"}, "sendTo": {"topics": [TOPIC]}}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def fan_out() -> str:
            measured.fanouts_started += 1
            response = await client.post("/v3/notifications", json=body, headers=backend)
            if response.status_code != 202:
                raise RuntimeError(f"fan-out send: {response.status_code} {response.text}")
            return str(response.json()["requestId"])

        async def running(request_id: str) -> bool:
            status = await conn.fetchval(
                "SELECT status FROM notification_requests WHERE id = $1::uuid", request_id
            )
            return status not in FINISHED

        async def started(request_id: str) -> bool:
            cursor = await conn.fetchval(
                "SELECT cursor FROM notification_requests WHERE id = $1::uuid", request_id
            )
            return bool(cursor) or not await running(request_id)

        async def idle() -> bool:
            pending = await conn.fetchval(
                "SELECT count(*) FROM notification_requests "
                "WHERE status NOT IN ('done', 'cancelled', 'failed') AND cardinality(topic_ids) > 0"
            )
            return not pending

        for r in range(opts.runs):
            progress(f"bench: /health c={low} during fan-out: run {r + 1}/{opts.runs}")
            request_id = await fan_out()
            # Wait until the worker has the job, so the run starts with the fan-out.
            await _until(functools.partial(started, request_id), 0.005)
            stop = asyncio.Event()

            async def keep_busy(first: str, stop: asyncio.Event = stop) -> None:
                current, t0 = first, time.perf_counter()
                while not stop.is_set():
                    if not await running(current):
                        measured.fanouts_done += 1
                        measured.fanout_rows_per_s.append(
                            opts.subscribers / (time.perf_counter() - t0)
                        )
                        current, t0 = await fan_out(), time.perf_counter()
                    await asyncio.sleep(0.02)

            busy = asyncio.create_task(keep_busy(request_id))
            figure.runs.append(await health(low))
            stop.set()
            await busy
            measured.runs_ended_in_fanout += 0 if await idle() else 1
            # Let the last fan-out finish before the next run (or the end).
            await _until(idle, 0.05)


async def _until(condition: Callable[[], Awaitable[bool]], every: float) -> None:
    """Poll the database until `condition` holds (the state lives there, not in this process)."""
    while not await condition():  # noqa: ASYNC110
        await asyncio.sleep(every)


def _share(opts: Options) -> str:
    return f"{opts.shape.user_rows:,} of {opts.shape.rows:,}"


def _ms(value: float) -> str:
    return f"{value:.2f}"


def markdown(
    opts: Options,
    command: str,
    started: datetime,
    machine: report.Machine,
    measured: Measured,
) -> str:
    f = measured.figures
    lines = [
        MARK_BEGIN,
        f"## One-command bench (`bench/all.py`): {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine.line()}",
        f"- Load average (1/5/15 min) before: {measured.load_before}; after: "
        f"{measured.load_after} (the machine is shared: other programs' CPU shows here)",
        f"- Data: {measured.table_rows:,} notification rows; `{BIG_USER}` owns "
        f"{opts.shape.user_rows:,} of the {opts.shape.rows:,} shared rows; "
        + ", ".join(f"`{who}` {n:,}" for who, n in opts.sizes.items())
        + f"; a topic of {opts.subscribers:,} subscribers"
        + (f"; seeded with SQL in {measured.seed_seconds:.0f} s" if measured.seed_seconds else ""),
        f"- Method: wrk, {opts.runs} runs of {opts.seconds:g} s per figure, each alternated with "
        "a /health run at the same connection count; medians. One `herald serve` process with "
        "its queue worker (a child process, counted in wrk+other); wrk, the server and "
        "PostgreSQL share the machine's cores.",
        "",
        "| figure | connections | req/s | p50 ms | p99 ms | /health req/s | /health p50 ms "
        "| /health p99 ms | req/s ÷ /health | p99 ÷ /health p99 "
        "| CPU: server / postgres / wrk+other (cores) | CPU ms per request: server / postgres |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for name, fig in f.items():
        if not fig.runs:
            continue
        conns = fig.runs[0].connections
        rate, p50, p99 = fig.median("rate"), fig.median("p50"), fig.median("p99")
        if fig.health:
            h_rate = fig.median("rate", of_health=True)
            h_p50 = fig.median("p50", of_health=True)
            h_p99 = fig.median("p99", of_health=True)
            ratio = f"{rate / h_rate:.3f}" if h_rate else ""
            p99_ratio = f"{p99 / h_p99:.2f}" if h_p99 else ""
            health_cells = f"{h_rate:,.0f} | {_ms(h_p50)} | {_ms(h_p99)} | {ratio} | {p99_ratio}"
        else:
            health_cells = " | | | | "
        lines.append(
            f"| {name} | {conns} | {rate:,.0f} | {_ms(p50)} | {_ms(p99)} | {health_cells} "
            f"| {_cores(fig.runs)} | {_per_request(fig.runs)} |"
        )
    lines += ["", "| target (issue 11) | measured | met |", "|---|--:|---|"]
    for label, value, ok in targets(opts, measured):
        lines.append(f"| {label} | {value} | {'yes' if ok else '**no**'} |")
    fan_rate = (
        f"median {statistics.median(measured.fanout_rows_per_s):,.0f} recipients/s"
        if measured.fanout_rows_per_s
        else "none ended within a run"
    )
    lines += [
        "",
        f"- Fan-outs during the /health runs: {measured.fanouts_started} started (one as each "
        f"run starts, the next as soon as one ends), {measured.fanouts_done} ended within a "
        f"run ({fan_rate}); runs that ended with a fan-out still running: "
        f"{measured.runs_ended_in_fanout} of {opts.runs}",
    ]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def _cores(runs: list[wrk.Run]) -> str:
    wall = sum(r.cpu.wall for r in runs)
    if wall <= 0:
        return ""
    server = sum((r.cpu.server or 0) for r in runs) / wall
    postgres = sum((r.cpu.postgres or 0) for r in runs) / wall
    machine = sum((r.cpu.machine or 0) for r in runs) / wall
    return f"{server:.2f} / {postgres:.2f} / {max(0.0, machine - server - postgres):.2f}"


def _per_request(runs: list[wrk.Run]) -> str:
    """CPU per request: steadier than rates on a machine shared with other programs."""
    done = sum(r.requests for r in runs)
    if not done:
        return ""
    server = sum((r.cpu.server or 0) for r in runs) * 1000 / done
    postgres = sum((r.cpu.postgres or 0) for r in runs) * 1000 / done
    return f"{server:.2f} / {postgres:.2f}"


def targets(opts: Options, measured: Measured) -> list[tuple[str, str, bool]]:
    f = measured.figures
    c, low = opts.connections, opts.low_connections
    out: list[tuple[str, str, bool]] = []

    def get(prefix: str) -> Figure | None:
        return next((fig for name, fig in f.items() if name.startswith(prefix)), None)

    sends = get(f"1-recipient sends c={c}")
    if sends and sends.runs:
        ratio = sends.median("rate") / sends.median("rate", of_health=True)
        out.append(("1-recipient sends/s ≥ 0.5 x /health req/s", f"{ratio:.3f}", ratio >= 0.5))
    big = get(f"inbox {BIG_USER} ({_share(opts)}) c={c}")
    if big and big.runs:
        ratio = big.median("rate") / big.median("rate", of_health=True)
        label = f"inbox req/s ({_share(opts)}) ≥ 0.5 x /health req/s"
        out.append((label, f"{ratio:.3f}", ratio >= 0.5))
    p99 = get(f"inbox {BIG_USER} c={low}")
    if p99 and p99.runs:
        ratio = p99.median("p99") / p99.median("p99", of_health=True)
        out.append((f"inbox p99 ≤ 2 x /health p99, c={low}", f"{ratio:.2f}", ratio <= 2))
    names = list(opts.sizes)
    small, huge = get(f"inbox {names[0]} "), get(f"inbox {names[-1]} ")
    if small and huge and small.runs and huge.runs:
        ratio = huge.median("p50") / small.median("p50")
        out.append(
            (
                f"inbox p50 at {opts.sizes[names[-1]]:,} rows ≤ 1.5 x at "
                f"{opts.sizes[names[0]]:,} rows",
                f"{ratio:.2f}",
                ratio <= 1.5,
            )
        )
    fan = get(f"/health c={low} during")
    if fan and fan.runs:
        value = fan.median("p99")
        out.append(
            (f"/health p99 at c={low} during a fan-out ≤ 10 ms", f"{value:.2f} ms", value <= 10)
        )
    return out


def update(path: Path, text: str) -> None:
    """Replace the previous one-command section, or put it right under the title."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip("\n")
        new = head + text + "\n" + tail
    else:
        title, sep, rest = old.partition("\n")
        new = title + sep + "\n" + text + "\n" + rest.lstrip("\n")
    path.write_text(new)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
