"""Benchmark `herald purge` on a large backlog of old rows, and the inbox page while it runs.

    python -m bench.purge            # 1,000,000 old inbox rows, inbox p99 at concurrency 4
    python -m bench.purge --quick    # 20,000 old rows, a smoke run in under a minute

It starts its own PostgreSQL (pgserver, in bench/data/purge/) unless given --database-url,
creates a fresh database (migrations, an app) and seeds it with INSERT … SELECT
generate_series:

- --old-rows inbox rows from sends made 200 days ago (done, --fanout recipients each, spread
  over --users users), 10,000 expired idempotency keys and 10,000 old queue log rows: what a
  purge with HERALD_RETENTION_DAYS=90 deletes;
- --young-rows inbox rows from sends of the last 30 days, and a measured user `inbox-user`
  with a normal inbox of --user-rows rows of the last 30 days: what it keeps.

Then it starts `python -m app.cli serve` (its periodic purge off: HERALD_RETENTION_SCHEDULE
empty) and drives GET /v3/notifications for the measured user at --concurrency from this
process, in three phases: for --seconds before the purge (the baseline); while `python -m
app.cli purge` runs (from its first progress line until it exits); for --seconds after it.
It checks that exactly the old rows are gone and that the measured user's page is unchanged.
CPU time of the server, PostgreSQL and the rest of the machine is read around each phase, so
a run on a busy machine says so. Prints a table and a `RESULT …` line, and appends a section
to bench/RESULTS.md (not for --quick unless --results is given)."""

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.load import Cpu, Part, Processes, Sample
from bench.seed import progress
from bench.server import (
    ROOT,
    add_database_arguments,
    drop,
    exclusive,
    fresh_app_database,
    given_server,
    herald,
    plain,
    postgres_server,
    postmaster_pid,
)

DATA_DIR = ROOT / "bench" / "data" / "purge"
RESULTS = ROOT / "bench" / "RESULTS.md"
USER = "inbox-user"
RETENTION_DAYS = 90


@dataclass(frozen=True)
class Options:
    old_rows: int
    young_rows: int
    user_rows: int
    users: int
    fanout: int
    concurrency: int
    seconds: float
    batch: int | None
    pause: float | None
    database_url: str | None
    database_name: str
    data_dir: Path
    results: Path | None
    keep: bool
    quick: bool


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.purge", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--old-rows", type=int, help="inbox rows to purge (1,000,000)")
    parser.add_argument("--young-rows", type=int, help="inbox rows that stay (100,000)")
    parser.add_argument("--user-rows", type=int, help="the measured user's inbox (200)")
    parser.add_argument("--users", type=int, help="users the sends go to (10,000)")
    parser.add_argument("--fanout", type=int, help="recipients per old or young send (50)")
    parser.add_argument("--concurrency", type=int, help="inbox requests in flight (4)")
    parser.add_argument("--seconds", type=float, help="before and after phases (15)")
    parser.add_argument("--batch-size", type=int, help="herald purge --batch-size (its default)")
    parser.add_argument("--pause", type=float, help="herald purge --pause (its default, 0)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    add_database_arguments(
        parser,
        data_dir=DATA_DIR,
        name_help="dropped and recreated (herald_bench_purge)",
        results="append to",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    sizes = (20_000, 5_000, 50, 1_000, 50, 4, 3.0) if quick else None
    big = sizes or (1_000_000, 100_000, 200, 10_000, 50, 4, 15.0)
    opts = Options(
        old_rows=args.old_rows or big[0],
        young_rows=args.young_rows or big[1],
        user_rows=args.user_rows or big[2],
        users=args.users or big[3],
        fanout=args.fanout or big[4],
        concurrency=args.concurrency or big[5],
        seconds=args.seconds or big[6],
        batch=args.batch_size,
        pause=args.pause,
        database_url=given_server(args.database_url),
        database_name=args.database_name or "herald_bench_purge",
        data_dir=args.data_dir,
        results=args.results or (None if quick else RESULTS),
        keep=bool(args.keep),
        quick=quick,
    )
    if not 1 <= opts.fanout <= opts.users:
        parser.error("--fanout must be between 1 and --users")
    for name in ("old_rows", "young_rows"):
        if getattr(opts, name) % opts.fanout:
            parser.error(f"--{name.replace('_', '-')} must be a multiple of --fanout")
    if opts.user_rows > opts.young_rows // opts.fanout:
        # Each of the measured user's rows belongs to a different young send.
        parser.error("--user-rows must be at most --young-rows / --fanout")
    return opts


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    command = report.command_line("bench.purge", argv)
    started = datetime.now(UTC)
    with (
        postgres_server(opts.database_url, opts.data_dir) as server_url,
        exclusive(server_url, opts.database_name),
    ):
        _run(opts, server_url, command, started)


def _run(opts: Options, server_url: str, command: str, started: datetime) -> None:
    url, made = fresh_app_database(server_url, opts.database_name)
    seeded = asyncio.run(_seed(plain(url), made.id, opts))
    # The server's own periodic purge stays off: only the measured `herald purge` deletes.
    with herald(url, extra_env={"HERALD_RETENTION_SCHEDULE": ""}) as (base, server):
        measured = asyncio.run(_measure(opts, url, base, server.pid, made.api_key, seeded))
    machine = asyncio.run(report.machine(plain(url)))
    print(table(opts, measured), flush=True)
    print(result_line(measured), flush=True)
    if opts.results is not None:
        append(opts.results, markdown(opts, measured, machine, started, command))
        progress(f"bench: appended a section to {opts.results}")
    if not opts.keep:
        asyncio.run(drop(server_url, opts.database_name))


@dataclass(frozen=True)
class Seeded:
    old_rows: int
    young_rows: int  # every other user's, and the measured user's
    old_requests: int
    seconds: float


_USERS = """
INSERT INTO users (app_id, identifier)
SELECT $1, 'u' || g FROM generate_series(1, $2) g
"""
# Sends r = 1 … n, `age` ago plus r seconds, each to `fanout` consecutive users (mod users).
_REQUESTS = """
INSERT INTO notification_requests (id, app_id, payload, recipient_count, status, created_at)
SELECT md5($2 || r)::uuid, $1,
       jsonb_build_object('notification', jsonb_build_object('title', 'Bench ' || r),
                          'sendTo', jsonb_build_object('recipients', jsonb_build_array('u' || r))),
       $4, 'done', now() - $5::interval + r * interval '1 second'
  FROM generate_series(1, $3) r
"""
_ROWS = """
INSERT INTO notifications (app_id, user_id, request_id, title, message, created_at, seen_at)
SELECT $1, $6::bigint + (r * $4::int + k) % $7::int, md5($2::text || r)::uuid, 'Bench ' || r,
       'A message body of about the length a real one has, with a link or two.',
       now() - $5::interval + r * interval '1 second',
       CASE WHEN k % 3 = 0 THEN NULL ELSE now() - $5::interval + r * interval '1 second' END
  FROM generate_series($3::int, $8::int) r, generate_series(0, $4::int - 1) k
"""
_USER_ROWS = """
INSERT INTO notifications (app_id, user_id, request_id, title, created_at)
SELECT $1, $3, md5('young-' || (1 + r % $4))::uuid, 'Yours ' || r,
       now() - interval '29 days' + r * interval '1 minute'
  FROM generate_series(1, $2) r
"""
_KEYS = """
INSERT INTO idempotency_keys (app_id, key, fingerprint, created_at)
SELECT $1, 'key-' || g, 'f', now() - interval '2 days' FROM generate_series(1, 10000) g
"""
_QUEUE_LOG = """
INSERT INTO pgqueuer_log (job_id, status, priority, entrypoint, created, aggregated)
SELECT 1000000 + g, 'successful', 0, 'fan_out', now() - interval '200 days', true
  FROM generate_series(1, 10000) g
"""


async def _seed(dsn: str, app_id: int, opts: Options) -> Seeded:
    started = time.monotonic()
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        await conn.execute(_USERS, app_id, opts.users)
        first, last = await conn.fetchrow(
            "SELECT min(id), max(id) FROM users WHERE app_id = $1", app_id
        )
        assert last - first + 1 == opts.users
        measured = await conn.fetchval(
            "INSERT INTO users (app_id, identifier) VALUES ($1, $2) RETURNING id", app_id, USER
        )
        old_requests = opts.old_rows // opts.fanout
        young_requests = opts.young_rows // opts.fanout
        for label, requests, age in (
            ("old-", old_requests, timedelta(days=200)),
            ("young-", young_requests, timedelta(days=30)),
        ):
            progress(f"bench: seeding {requests * opts.fanout:,} {label[:-1]} inbox rows")
            await conn.execute(_REQUESTS, app_id, label, requests, opts.fanout, age)
            # In chunks of sends, so progress shows and no statement runs for minutes.
            chunk = max(1, 100_000 // opts.fanout)
            for low in range(0, requests, chunk):
                n = min(chunk, requests - low)
                if low:
                    progress(f"bench:   {low * opts.fanout:,} rows")
                await conn.execute(
                    _ROWS, app_id, label, low + 1, opts.fanout, age, first, opts.users, low + n
                )
        await conn.execute(_USER_ROWS, app_id, opts.user_rows, measured, young_requests)
        await conn.execute(_KEYS, app_id)
        await conn.execute(_QUEUE_LOG)
        progress("bench: VACUUM (ANALYZE), CHECKPOINT")
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    seconds = time.monotonic() - started
    progress(f"bench: seeded in {seconds:.1f} s")
    return Seeded(
        old_rows=old_requests * opts.fanout,
        young_rows=young_requests * opts.fanout + opts.user_rows,
        old_requests=old_requests,
        seconds=seconds,
    )


@dataclass
class Measured:
    before: Sample
    during: Sample
    after: Sample
    purge_seconds: float  # from the purge's first progress line to its exit
    command_seconds: float  # the whole `herald purge` process, start-up and migrations included
    deleted: dict[str, int]
    seeded: Seeded


async def _measure(
    opts: Options, url: str, base: str, server_pid: int, api_key: str, seeded: Seeded
) -> Measured:
    dsn = plain(url)
    processes = Processes(server_pid=server_pid, postmaster_pid=await postmaster_pid(dsn))
    headers = {"X-ENGAGESPOT-API-KEY": api_key, "X-ENGAGESPOT-USER-ID": USER}
    limits = httpx.Limits(max_connections=opts.concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        load = _Load(client, headers, opts.concurrency, processes, expected=opts.user_rows)
        await load.run("warm-up", until=_after(min(3.0, opts.seconds)))
        progress(f"bench: inbox before the purge, {opts.seconds:.0f} s")
        before = await load.run("inbox before the purge", until=_after(opts.seconds))
        during, purge_seconds, command_seconds, deleted = await _purge_under_load(opts, url, load)
        progress(f"bench: inbox after the purge, {opts.seconds:.0f} s")
        after = await load.run("inbox after the purge", until=_after(opts.seconds))
    conn = await asyncpg.connect(dsn)
    try:
        left = await conn.fetchval("SELECT count(*) FROM notifications")
        requests = await conn.fetchval("SELECT count(*) FROM notification_requests")
    finally:
        await conn.close()
    young_requests = (seeded.young_rows - opts.user_rows) // opts.fanout
    if (left, requests) != (seeded.young_rows, young_requests):
        raise RuntimeError(
            f"after the purge: {left:,} inbox rows and {requests:,} requests, expected "
            f"{seeded.young_rows:,} and {young_requests:,}"
        )
    if deleted["notifications"] != seeded.old_rows:
        raise RuntimeError(f"herald purge reported {deleted}, expected {seeded.old_rows:,} rows")
    return Measured(before, during, after, purge_seconds, command_seconds, deleted, seeded)


def _after(seconds: float) -> Any:
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() >= deadline


class _Load:
    """GET /v3/notifications for the measured user, closed loop, until told to stop."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        concurrency: int,
        processes: Processes,
        *,
        expected: int,
    ):
        self.client = client
        self.headers = headers
        self.concurrency = concurrency
        self.processes = processes
        self.expected = expected

    async def run(self, name: str, *, until: Any) -> Sample:
        latencies: list[float] = []

        async def worker() -> None:
            while not until():
                t0 = time.perf_counter()
                response = await self.client.get("/v3/notifications", headers=self.headers)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(f"inbox answered {response.status_code}: {response.text}")
                total = response.json()["pagination"]["totalCount"]
                if total != self.expected:
                    raise RuntimeError(f"the inbox holds {total} rows, expected {self.expected}")

        cpu, own, started = self.processes.cpu(), os.times(), time.time()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        ended, mine = time.time(), os.times()
        client = mine.user + mine.system - own.user - own.system
        sample = Sample(name)
        sample.add(
            [Part(len(latencies), started, ended, latencies, client)],
            self.processes.cpu() - cpu,
            wanted=len(latencies),
        )
        return sample


async def _purge_under_load(
    opts: Options, url: str, load: _Load
) -> tuple[Sample, float, float, dict[str, int]]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": url,
        "HERALD_RETENTION_DAYS": str(RETENTION_DAYS),
        "HERALD_DATA_DIR": str(opts.data_dir),
        "HERALD_LOG_LEVEL": "warning",
    }
    args = ["--batch-size", str(opts.batch)] if opts.batch else []
    args += ["--pause", str(opts.pause)] if opts.pause is not None else []
    progress(f"bench: herald purge {' '.join(args)}".rstrip())
    launched = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "purge",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    purging, finished = asyncio.Event(), asyncio.Event()
    began = ended = 0.0

    async def relay(stream: asyncio.StreamReader) -> None:
        # The purge's first line comes once start-up and migrations are done; its last when
        # the purge is: the phase runs between the two, on this process's clock.
        nonlocal began, ended
        async for raw in stream:
            line = raw.decode().rstrip()
            if line.startswith("purge:"):
                progress(f"bench: {line}")
            if "rows per batch" in line and not purging.is_set():
                began = time.perf_counter()
                purging.set()
            if line.startswith("purge: done in"):
                ended = time.perf_counter()
                finished.set()

    relaying = asyncio.create_task(relay(proc.stderr))
    output = asyncio.create_task(proc.stdout.read())
    exited = asyncio.create_task(proc.wait())
    await asyncio.wait([asyncio.create_task(purging.wait()), exited], return_when="FIRST_COMPLETED")
    during = await load.run(
        "inbox during the purge", until=lambda: finished.is_set() or exited.done()
    )
    code = await exited
    command_seconds = time.perf_counter() - launched
    await relaying
    if code != 0 or not finished.is_set():
        raise RuntimeError(f"herald purge exited {code}")
    return during, ended - began, command_seconds, json.loads(await output)


def table(opts: Options, m: Measured) -> str:
    lines = [
        "",
        f"herald purge: {m.seeded.old_rows:,} old inbox rows of {m.seeded.old_requests:,} sends "
        f"({opts.fanout} recipients each), {m.seeded.young_rows:,} rows kept",
        f"  purge {m.purge_seconds:.1f} s ({_rows(m) / m.purge_seconds:,.0f} rows/s); the whole "
        f"command {m.command_seconds:.1f} s; deleted {_deleted(m)}",
        "",
        f"{'GET /v3/notifications, c=' + str(opts.concurrency):<34} {'done':>6} {'req/s':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'others':>7}",
    ]
    for s in (m.before, m.during, m.after):
        lines.append(
            f"{s.name:<34} {s.done:>6} {s.rate:>7.1f} {s.percentile(50):>7.1f} "
            f"{s.percentile(99):>7.1f} {s.percentile(100):>7.1f} {_cores(s.cpu):>7}"
        )
    lines += [
        f"  p99 during ÷ before: {_ratio(m):.2f}",
        "  others: cores busy with programs other than the bench, Herald and PostgreSQL",
        "",
    ]
    return "\n".join(lines)


def result_line(m: Measured) -> str:
    return (
        f"RESULT purge_seconds={m.purge_seconds:.1f} rows_per_s={_rows(m) / m.purge_seconds:.0f} "
        f"p99_before_ms={m.before.percentile(99):.1f} p99_during_ms={m.during.percentile(99):.1f} "
        f"p99_after_ms={m.after.percentile(99):.1f} ratio={_ratio(m):.2f}"
    )


def markdown(
    opts: Options, m: Measured, machine: report.Machine, started: datetime, command: str
) -> str:
    out = [
        f"## Purge: {started:%Y-%m-%d %H:%M} UTC, {m.seeded.old_rows:,} old inbox rows",
        "",
        f"- Machine: {machine.line()}",
        f"- Command: `{command}`",
        f"- Seeded in {m.seeded.seconds:.0f} s: {m.seeded.old_rows:,} inbox rows of "
        f"{m.seeded.old_requests:,} sends 200 days old ({opts.fanout} recipients each, "
        f"{opts.users:,} users), 10,000 expired idempotency keys, 10,000 old queue log rows; "
        f"{m.seeded.young_rows:,} rows of the last 30 days stay, {opts.user_rows} of them the "
        f"measured user's",
        f"- `herald purge` (HERALD_RETENTION_DAYS={RETENTION_DAYS}): **{m.purge_seconds:.1f} s**"
        f" ({_rows(m) / m.purge_seconds:,.0f} rows/s; the whole command with start-up "
        f"{m.command_seconds:.1f} s); deleted {_deleted(m)}",
        f"- Inbox page of the measured user, concurrency {opts.concurrency}, one httpx client:",
        "",
        "| phase | requests | req/s | p50 ms | p99 ms | max ms | other programs (cores) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for s in (m.before, m.during, m.after):
        out.append(
            f"| {s.name} | {s.done:,} | {s.rate:.1f} | {s.percentile(50):.1f} | "
            f"{s.percentile(99):.1f} | {s.percentile(100):.1f} | {_cores(s.cpu)} |"
        )
    out += ["", f"- p99 during the purge ÷ before: **{_ratio(m):.2f}**", ""]
    return "\n".join(out)


def append(path: Path, section: str) -> None:
    """Add this run's section at the end; other sections stay as they are."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(text.rstrip("\n") + "\n\n" + section)


def _rows(m: Measured) -> int:
    return sum(m.deleted.values())


def _deleted(m: Measured) -> str:
    return ", ".join(f"{table} {rows:,}" for table, rows in m.deleted.items())


def _ratio(m: Measured) -> float:
    return m.during.percentile(99) / max(1e-9, m.before.percentile(99))


def _cores(cpu: Cpu) -> str:
    others = cpu.others
    return "-" if others is None or cpu.wall <= 0 else f"{others / cpu.wall:.2f}"


if __name__ == "__main__":
    main()
