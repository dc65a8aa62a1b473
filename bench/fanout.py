"""Benchmark a send to a large topic against a bare COPY of the same rows, and 1-recipient sends.

    python -m bench.fanout            # a 100,000-subscriber topic, 5 rounds, 3,000 sends
    python -m bench.fanout --quick    # a smoke run in a few seconds

It starts its own PostgreSQL (pgserver, in bench/data/fanout/) unless given --database-url,
creates a fresh database, starts `python -m app.cli serve` on 127.0.0.1 (with its in-process
queue worker, HERALD_LOG_LEVEL=warning) and then, through the HTTP API only:

1. creates an app (admin API) and a topic, and subscribes --subscribers users u1 … uN to it
   (POST /v3/topics/{id}/users, 10,000 per call; --subscribe sql inserts them with SQL
   instead);
2. in each of --rounds rounds, times (a) POST /v3/notifications with sendTo.topics until the
   request's status is `done` (polled in notification_requests every 20 ms), i.e. the
   worker's batched fan-out of one inbox row per subscriber, and (b) a bare COPY
   (asyncpg copy_records_to_table) of the same number of rows, with the same content and
   the same user ids, into the same notifications table (same indexes, same foreign keys),
   in one transaction. The two alternate in order from round to round, so that neither
   always meets the larger table; a CHECKPOINT precedes each;
3. times --sends 1-recipient sends (POST /v3/notifications, answered 202 after writing the
   inbox row), with the worker running, and reads the CPU time of the load generator, the
   server and PostgreSQL to tell which one limits the rate on this machine.

Every fan-out and COPY is checked to have written exactly one row per subscriber.
Prints a table and a `RESULT …` line, and appends a dated section to bench/RESULTS.md (not
for --quick unless --results is given)."""

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx

from bench import report
from bench.client import recipient, send_body
from bench.load import Cpu, Processes, Sample, closed_loop, run_local
from bench.seed import progress
from bench.server import (
    add_database_arguments,
    drop,
    given_server,
    herald,
    plain,
    postgres_server,
    postmaster_pid,
    recreate,
)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data" / "fanout"
RESULTS = ROOT / "bench" / "RESULTS.md"
TOPIC = "everyone"
SUBSCRIBE_CHUNK = 10_000  # the API's limit per call
POLL_SECONDS = 0.02
FINISHED = ("done", "cancelled", "failed")
TARGET_RATIO = 0.5

Subscribe = Literal["api", "sql"]


@dataclass(frozen=True)
class Options:
    subscribers: int
    subscribe: Subscribe
    rounds: int
    sends: int
    concurrency: int
    max_seconds: float
    database_url: str | None
    database_name: str
    data_dir: Path
    results: Path | None
    keep: bool
    quick: bool


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--subscribers", type=int, help="users in the topic (100,000)")
    parser.add_argument(
        "--subscribe",
        choices=("api", "sql"),
        default="api",
        help="subscribe through POST /v3/topics/{id}/users (default) or with SQL",
    )
    parser.add_argument("--rounds", type=int, help="fan-out + COPY rounds (5)")
    parser.add_argument("--sends", type=int, help="1-recipient sends to time (3,000)")
    parser.add_argument("--concurrency", type=int, help="sends in flight (10)")
    parser.add_argument("--max-seconds", type=float, help="cap per timed phase (300)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    add_database_arguments(
        parser,
        data_dir=DATA_DIR,
        name="herald_bench_fanout",
        name_help="recreated",
        results="append to",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    subscribers, rounds, sends, concurrency, max_seconds = (
        (2_000, 1, 100, 4, 30.0) if quick else (100_000, 5, 3_000, 10, 300.0)
    )
    opts = Options(
        subscribers=args.subscribers or subscribers,
        subscribe=args.subscribe,
        rounds=args.rounds or rounds,
        sends=args.sends or sends,
        concurrency=args.concurrency or concurrency,
        max_seconds=args.max_seconds or max_seconds,
        database_url=given_server(args.database_url),
        database_name=args.database_name,
        data_dir=args.data_dir,
        results=args.results or (None if quick else RESULTS),
        keep=bool(args.keep),
        quick=quick,
    )
    if opts.subscribers < 1 or opts.rounds < 1 or opts.sends < 1 or opts.concurrency < 1:
        raise SystemExit("--subscribers, --rounds, --sends and --concurrency must be positive")
    return opts


@dataclass(frozen=True)
class Timed:
    """One timed bulk write: `rows` rows in `seconds`, and the CPU it took."""

    rows: int
    seconds: float
    cpu: Cpu
    batches: int = 0  # fan-out only: the worker's batches (cursor values seen while polling)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def others(self) -> float | None:
        """Cores that other programs on the machine kept busy meanwhile, on average."""
        o = self.cpu.others
        return o / self.seconds if o is not None and self.seconds > 0 else None


@dataclass
class Measured:
    subscribe_seconds: float = 0.0
    fanouts: list[Timed] = field(default_factory=list)
    copies: list[Timed] = field(default_factory=list)
    sends: Sample = field(default_factory=lambda: Sample("POST /v3/notifications"))
    table_rows: int = 0

    @property
    def fanout_rate(self) -> float:
        return _rate(self.fanouts)

    @property
    def copy_rate(self) -> float:
        return _rate(self.copies)

    @property
    def ratio(self) -> float:
        return self.fanout_rate / self.copy_rate if self.copy_rate else 0.0

    @property
    def fanout_per_cpu(self) -> float | None:
        """Rows per CPU second of the server (HTTP + worker) and PostgreSQL."""
        return _per_cpu(self.fanouts, lambda c: _sum(c.server, c.postgres))

    @property
    def copy_per_cpu(self) -> float | None:
        """Rows per CPU second of the COPY's client (this process) and PostgreSQL."""
        return _per_cpu(self.copies, lambda c: _sum(c.client, c.postgres))


def _rate(timed: list[Timed]) -> float:
    seconds = sum(t.seconds for t in timed)
    return sum(t.rows for t in timed) / seconds if seconds > 0 else 0.0


def _median(timed: list[Timed]) -> float:
    return statistics.median(t.rate for t in timed) if timed else 0.0


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def _per_cpu(timed: list[Timed], cpu_of: Callable[[Cpu], float | None]) -> float | None:
    used = [cpu_of(t.cpu) for t in timed]
    if not timed or any(u is None for u in used):
        return None
    seconds = sum(u or 0.0 for u in used)
    return sum(t.rows for t in timed) / seconds if seconds > 0 else None


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    command = report.command_line("bench.fanout", argv)
    started = datetime.now(UTC)
    with postgres_server(opts.database_url, opts.data_dir) as server_url:
        url = asyncio.run(recreate(server_url, opts.database_name))
        progress(f"bench: fresh database {opts.database_name}; the server applies migrations")
        admin_token = f"bench-{uuid.uuid4().hex}"
        with herald(url, admin_token=admin_token) as (base, server):
            measured = asyncio.run(_measure(opts, plain(url), base, server.pid, admin_token))
        machine = asyncio.run(report.machine(plain(url)))
        print(table(opts, measured, machine, started), flush=True)
        print(result_line(measured), flush=True)
        if opts.results is not None:
            append(opts.results, markdown(opts, measured, machine, started, command))
            progress(f"bench: appended a section to {opts.results}")
        if not opts.keep:
            asyncio.run(drop(server_url, opts.database_name))


async def _measure(
    opts: Options, dsn: str, base: str, server_pid: int, admin_token: str
) -> Measured:
    measured = Measured()
    processes = Processes(server_pid=server_pid, postmaster_pid=await postmaster_pid(dsn))
    admin = {"Authorization": f"Bearer {admin_token}"}
    conn = await asyncpg.connect(dsn, command_timeout=max(600.0, opts.max_seconds))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            app = _ok(
                await client.post("/admin/apps", json={"name": "bench-fanout"}, headers=admin),
                201,
            )
            backend = backend_headers(app)
            topic = _ok(
                await client.post(
                    "/v3/topics", json={"name": "Everyone", "identifier": TOPIC}, headers=backend
                ),
                201,
            )
            topic_id = int(topic["id"])
            t0 = time.perf_counter()
            if opts.subscribe == "api":
                await _subscribe_api(client, backend, topic_id, opts.subscribers)
            else:
                await _subscribe_sql(conn, int(app["id"]), topic_id, opts.subscribers)
            measured.subscribe_seconds = time.perf_counter() - t0
            progress(
                f"bench: {opts.subscribers:,} subscribers ({opts.subscribe}) in "
                f"{measured.subscribe_seconds:.1f} s"
            )
            user_ids = [
                int(r[0])
                for r in await conn.fetch(
                    "SELECT user_id FROM topic_subscriptions WHERE topic_id = $1 ORDER BY user_id",
                    topic_id,
                )
            ]
            if len(user_ids) != opts.subscribers:
                raise RuntimeError(f"{len(user_ids)} subscriptions, not {opts.subscribers}")
            for name in ("users", "topic_subscriptions"):
                await conn.execute(f"VACUUM (ANALYZE) {name}")

            bulk = _Bulk(opts, conn, client, processes, app, admin, user_ids)
            await bulk.warm_up()
            for r in range(opts.rounds):
                steps = (bulk.fan_out, bulk.copy) if r % 2 == 0 else (bulk.copy, bulk.fan_out)
                for step in steps:
                    await step(r)
                f, c = bulk.fanouts[-1], bulk.copies[-1]
                progress(
                    f"bench: round {r + 1}/{opts.rounds}: fan-out {f.rate:,.0f} rows/s, "
                    f"COPY {c.rate:,.0f} rows/s, ratio {f.rate / c.rate:.3f}"
                )
            measured.fanouts, measured.copies = bulk.fanouts, bulk.copies

            await _checkpoint(conn)
            measured.sends = await _sends(opts, base, backend, processes)
        measured.table_rows = int(await conn.fetchval("SELECT count(*) FROM notifications"))
    finally:
        await conn.close()
    return measured


async def _subscribe_api(
    client: httpx.AsyncClient, backend: dict[str, str], topic_id: int, n: int
) -> None:
    for start in range(1, n + 1, SUBSCRIBE_CHUNK):
        upto = min(n, start + SUBSCRIBE_CHUNK - 1)
        users = [{"identifier": f"u{i}"} for i in range(start, upto + 1)]
        path = f"/v3/topics/{topic_id}/users"
        answer = _ok(await client.post(path, json={"users": users}, headers=backend), 200)
        if answer["count"] != len(users):
            raise RuntimeError(f"subscribed {answer['count']} users, not {len(users)}")
        progress(f"bench: subscribed {upto:,} / {n:,} (API)")


async def _subscribe_sql(conn: asyncpg.Connection, app_id: int, topic_id: int, n: int) -> None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO users (app_id, identifier) "
            "SELECT $1::bigint, 'u' || g FROM generate_series(1, $2::bigint) AS g ORDER BY g",
            app_id,
            n,
        )
        await conn.execute(
            "INSERT INTO topic_subscriptions (topic_id, user_id) "
            "SELECT $1::bigint, id FROM users WHERE app_id = $2 ORDER BY id",
            topic_id,
            app_id,
        )


class _Bulk:
    """The two ways of writing one inbox row per subscriber, each timed the same way."""

    def __init__(
        self,
        opts: Options,
        conn: asyncpg.Connection,
        client: httpx.AsyncClient,
        processes: Processes,
        app: dict[str, Any],
        admin: dict[str, str],
        user_ids: list[int],
    ):
        self.opts = opts
        self.conn = conn
        self.client = client
        self.processes = processes
        self.app_id = int(app["id"])
        self.backend = backend_headers(app)
        self.admin = admin
        self.user_ids = user_ids
        self.fanouts: list[Timed] = []
        self.copies: list[Timed] = []

    async def warm_up(self) -> None:
        """One small untimed fan-out and COPY, so that no first-use cost lands in round 1."""
        some = self.user_ids[: min(len(self.user_ids), 2_000)]
        topic = _ok(
            await self.client.post(
                "/v3/topics",
                json={"name": "Warm-up", "identifier": "warm-up"},
                headers=self.backend,
            ),
            201,
        )
        await self.conn.execute(
            "INSERT INTO topic_subscriptions (topic_id, user_id) "
            "SELECT $1::bigint, u FROM unnest($2::bigint[]) AS u",
            int(topic["id"]),
            some,
        )
        await self._fan_out("warm-up", 0, len(some))
        await self._copy(0, some)
        progress(f"bench: warmed up with a {len(some):,}-subscriber fan-out and COPY")

    async def fan_out(self, r: int) -> None:
        timed = await self._fan_out(TOPIC, r + 1, len(self.user_ids))
        progress(
            f"bench: fan-out to {timed.rows:,} subscribers in {timed.seconds:.2f} s "
            f"({timed.batches} batches)"
        )
        self.fanouts.append(timed)

    async def copy(self, r: int) -> None:
        timed = await self._copy(r + 1, self.user_ids)
        progress(f"bench: COPY of {timed.rows:,} rows in {timed.seconds:.2f} s")
        self.copies.append(timed)

    async def _fan_out(self, topic: str, r: int, expected: int) -> Timed:
        body = {"notification": content(r), "sendTo": {"topics": [topic]}}
        await _checkpoint(self.conn)
        before = self.processes.cpu()
        t0 = time.perf_counter()
        answer = _ok(
            await self.client.post("/v3/notifications", json=body, headers=self.backend), 202
        )
        request_id = uuid.UUID(answer["requestId"])
        deadline = t0 + self.opts.max_seconds
        cursors: set[int] = set()
        said = t0
        while True:
            status, cursor = await self.conn.fetchrow(
                "SELECT status, cursor FROM notification_requests WHERE id = $1", request_id
            )
            cursors.add(int(cursor))
            now = time.perf_counter()
            if status in FINISHED:
                break
            if now > deadline:
                raise RuntimeError(f"fan-out not done after {self.opts.max_seconds:.0f} s")
            if now - said >= 2:
                said = now
                progress(f"bench: fan-out {status}, {now - t0:.0f} s")
            await asyncio.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - t0
        cpu = self.processes.cpu() - before
        if status != "done":
            raise RuntimeError(f"fan-out ended {status}")
        described = _ok(
            await self.client.get(
                f"/admin/apps/{self.app_id}/requests/{request_id}", headers=self.admin
            ),
            200,
        )
        if described["delivered"] != expected:
            raise RuntimeError(f"fan-out wrote {described['delivered']} rows, not {expected}")
        # Cursor values seen while polling: a lower bound on the batches run.
        return Timed(expected, seconds, cpu, batches=len(cursors - {0}))

    async def _copy(self, r: int, user_ids: list[int]) -> Timed:
        request_id = uuid.uuid4()
        c = content(r)
        await self.conn.execute(
            "INSERT INTO notification_requests (id, app_id, payload, recipient_count, status) "
            "VALUES ($1, $2, $3::jsonb, $4, 'done')",
            request_id,
            self.app_id,
            json.dumps({"notification": c}),
            len(user_ids),
        )
        now = datetime.now(UTC)
        data = json.dumps(c["data"])
        row = (c["title"], c["message"], None, c["url"], data, None, None, None, now)
        records = [(self.app_id, u, request_id, *row) for u in user_ids]
        await _checkpoint(self.conn)
        before = self.processes.cpu()
        t0 = time.perf_counter()
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(
                "notifications", records=records, columns=COPY_COLUMNS
            )
        seconds = time.perf_counter() - t0
        cpu = self.processes.cpu() - before
        written = await self.conn.fetchval(
            "SELECT count(*) FROM notifications WHERE request_id = $1", request_id
        )
        if written != len(user_ids):
            raise RuntimeError(f"COPY wrote {written} rows, not {len(user_ids)}")
        return Timed(len(user_ids), seconds, cpu)


# The columns the fan-out's INSERT … SELECT writes, in the same order.
COPY_COLUMNS = (
    "app_id",
    "user_id",
    "request_id",
    "title",
    "message",
    "icon",
    "url",
    "data",
    "blocks",
    "category_id",
    "tenant_identifier",
    "created_at",
)


def content(r: int) -> dict[str, Any]:
    """The notification of round r (0 is the warm-up): the same for the fan-out and the COPY."""
    return {
        "title": f"Fan-out round {r}",
        "message": "A message for every subscriber of the topic, written by the bench.",
        "url": "https://example.com/bench/fanout",
        "data": {"round": r, "kind": "bench"},
    }


def backend_headers(app: dict[str, Any]) -> dict[str, str]:
    return {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-API-SECRET": app["apiSecret"]}


async def _checkpoint(conn: asyncpg.Connection) -> None:
    """Flush the previous phase's dirty pages now, rather than during the next one."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


async def _sends(opts: Options, base: str, backend: dict[str, str], processes: Processes) -> Sample:
    """1-recipient sends from one httpx client in this process (the server's worker idles).

    The CPU counters are read around the timed requests only, after the warm-up."""
    c = opts.concurrency
    progress(f"bench: {opts.sends:,} 1-recipient sends, concurrency {c}")
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def send(i: int) -> None:
            body = send_body(i, recipient(i, opts.subscribers))
            _ok(await client.post("/v3/notifications", json=body, headers=backend), 202)

        deadline = time.perf_counter() + opts.max_seconds
        warm = max(c, min(200, opts.sends // 10))
        await closed_loop(send, warm, c, deadline, [])
        before = processes.cpu()
        part = await run_local(
            lambda i: send(warm + i), count=opts.sends, concurrency=c, deadline=deadline
        )
        cpu = processes.cpu() - before
    sample = Sample("POST /v3/notifications")
    sample.add([part], cpu, wanted=opts.sends)
    progress(f"bench: {sample.rate:,.1f} sends/s")
    return sample


@dataclass(frozen=True)
class Verdict:
    client: float  # cores busy on average while timed
    server: float
    postgres: float
    machine: float | None
    others: float | None  # other programs on the machine
    cores: int
    text: str

    @property
    def busy(self) -> str:
        def x(v: float | None) -> str:
            return "?" if v is None else f"{v:.2f}"

        return (
            f"client {self.client:.2f}, server {self.server:.2f}, postgres {self.postgres:.2f}, "
            f"other programs {x(self.others)}; whole machine {x(self.machine)} of {self.cores}"
        )


def verdict(sample: Sample, cores: int) -> Verdict:
    """Which process limits the send rate: by the cores each one kept busy while timed."""
    s = sample.seconds or 1.0
    cpu = sample.cpu
    client, server, postgres = cpu.client / s, (cpu.server or 0) / s, (cpu.postgres or 0) / s
    machine = cpu.machine / s if cpu.machine is not None else None
    others = cpu.others / s if cpu.others is not None else None
    per = sample.done or 1
    client_ms = cpu.client / per * 1000
    server_ms = (cpu.server or 0) / per * 1000
    pg_ms = (cpu.postgres or 0) / per * 1000
    heaviest = "the server" if server_ms >= client_ms else "the client"
    # The load generator and the server are one Python process each: one core at most.
    if client >= 0.85 and client >= server:
        who = "the client (its one Python process is saturated)"
    elif server >= 0.85:
        who = "the server (its one Python process is saturated)"
    elif machine is not None and machine >= 0.9 * cores:
        shared = f" and other programs ({others:.2f} cores)" if others and others >= 0.2 else ""
        who = (
            f"CPU: the {cores} cores are saturated, shared by client, server, PostgreSQL"
            f"{shared}; per send the server burns {server_ms:.2f} ms, the client "
            f"{client_ms:.2f} ms, PostgreSQL {pg_ms:.2f} ms, so {heaviest} is the bottleneck"
        )
    else:
        who = "latency, not CPU (no process and not the machine is saturated)"
    text = f"bottleneck: {who}"
    if server_ms > 0:
        # With the client elsewhere: one server process, PostgreSQL on the remaining core(s).
        alone = min(1000 / server_ms, cores * 1000 / (server_ms + pg_ms))
        text += f"; the server side alone would sustain about {alone:,.0f} sends/s"
    return Verdict(client, server, postgres, machine, others, cores, text)


def table(opts: Options, m: Measured, machine: report.Machine, started: datetime) -> str:
    lines = [
        "",
        f"Herald fan-out benchmark, {started:%Y-%m-%d %H:%M} UTC",
        f"machine  {machine.line()}",
        f"topic    {opts.subscribers:,} subscribers, subscribed via "
        f"{_how(opts)} in {m.subscribe_seconds:.1f} s "
        f"({opts.subscribers / max(m.subscribe_seconds, 1e-9):,.0f}/s)",
        "",
        "        fan-out (POST until done)                              "
        "COPY (asyncpg copy_records_to_table)",
        f"{'round':<6}{'s':>7}{'rows/s':>9}{'batches':>8}{'CPU s: server':>15}{'postgres':>9}"
        f"{'others':>8}  {'s':>7}{'rows/s':>9}{'CPU s: client':>15}{'postgres':>9}"
        f"{'others':>8}{'ratio':>8}",
    ]
    for i, (f, c) in enumerate(zip(m.fanouts, m.copies, strict=True)):
        lines.append(
            f"{i + 1:<6}{f.seconds:>7.2f}{f.rate:>9.0f}{f.batches:>8}{_s(f.cpu.server):>15}"
            f"{_s(f.cpu.postgres):>9}{_cores(f.others):>8}  {c.seconds:>7.2f}{c.rate:>9.0f}"
            f"{_s(c.cpu.client):>15}{_s(c.cpu.postgres):>9}{_cores(c.others):>8}"
            f"{f.rate / c.rate:>8.3f}"
        )
    s = m.sends
    v = verdict(s, machine.cpus)
    lines += [
        "(CPU s: CPU seconds used by each process during the phase; others: cores that other "
        "programs on the machine kept busy meanwhile)",
        "",
        f"fan-out recipients/s      {m.fanout_rate:>12,.0f}   (all rounds; median round "
        f"{_median(m.fanouts):,.0f})",
        f"COPY rows/s               {m.copy_rate:>12,.0f}   (all rounds; median round "
        f"{_median(m.copies):,.0f})",
        f"ratio fan-out / COPY      {m.ratio:>12.3f}   (target >= {TARGET_RATIO})",
        f"rows per CPU second       fan-out {_n(m.fanout_per_cpu)} (server + postgres), COPY "
        f"{_n(m.copy_per_cpu)} (client + postgres), ratio {_ratio(m)}",
        "",
        f"sends: {s.done:,} 1-recipient POST /v3/notifications, concurrency {opts.concurrency}, "
        "worker running" + ("  (cut short)" if s.cut_short else ""),
        f"sends/s                   {s.rate:>12,.1f}   p50 {s.percentile(50):.2f} ms, "
        f"p99 {s.percentile(99):.2f} ms",
        f"CPU ms per send           client {_ms(s.cpu.client, s)}, server {_ms(s.cpu.server, s)}, "
        f"postgres {_ms(s.cpu.postgres, s)}",
        f"cores busy while timed    {v.busy}",
        v.text,
        "",
        f"notifications table at the end: {m.table_rows:,} rows",
        "",
    ]
    return "\n".join(lines)


def result_line(m: Measured) -> str:
    return (
        f"RESULT recipients_per_s={m.fanout_rate:.1f} copy_rows_per_s={m.copy_rate:.1f} "
        f"ratio={m.ratio:.3f} sends_per_s={m.sends.rate:.1f}"
    )


def markdown(
    opts: Options, m: Measured, machine: report.Machine, started: datetime, command: str
) -> str:
    s = m.sends
    v = verdict(s, machine.cpus)
    out = [
        f"## Fan-out: {started:%Y-%m-%d %H:%M} UTC, {opts.subscribers:,} subscribers",
        "",
        f"- Machine: {machine.line()}",
        f"- Command: `{command}`",
        f"- Topic: {opts.subscribers:,} subscribers, subscribed via {_how(opts)} in "
        f"{m.subscribe_seconds:.1f} s",
        "- Fan-out: POST /v3/notifications with `sendTo.topics`, timed until the request's "
        "status is `done` (the in-process worker's batches); COPY: asyncpg "
        "`copy_records_to_table` of the same rows (same content, same user ids) into the same "
        "table, one transaction; a CHECKPOINT before each; the two alternate in order",
        "",
        "| round | fan-out s | recipients/s | batches | CPU s server | CPU s postgres "
        "| others (cores) | COPY s | COPY rows/s | CPU s client | CPU s postgres "
        "| others (cores) | ratio |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for i, (f, c) in enumerate(zip(m.fanouts, m.copies, strict=True)):
        out.append(
            f"| {i + 1} | {f.seconds:.2f} | {f.rate:,.0f} | {f.batches} | {_s(f.cpu.server)} | "
            f"{_s(f.cpu.postgres)} | {_cores(f.others)} | {c.seconds:.2f} | {c.rate:,.0f} | "
            f"{_s(c.cpu.client)} | {_s(c.cpu.postgres)} | {_cores(c.others)} | "
            f"{f.rate / c.rate:.3f} |"
        )
    out += [
        f"| all | | **{m.fanout_rate:,.0f}** | | | | | | **{m.copy_rate:,.0f}** | | | | "
        f"**{m.ratio:.3f}** |",
        "",
        f"- Median round: fan-out {_median(m.fanouts):,.0f} recipients/s, COPY "
        f"{_median(m.copies):,.0f} rows/s",
        f"- Rows per CPU second (less sensitive to other programs on the machine): fan-out "
        f"{_n(m.fanout_per_cpu)} (server + PostgreSQL), COPY {_n(m.copy_per_cpu)} "
        f"(client + PostgreSQL), ratio {_ratio(m)}",
        f"- 1-recipient sends: {s.done:,} at concurrency {opts.concurrency}, one httpx client "
        f"in the bench process, worker running: **{s.rate:,.1f} sends/s**, "
        f"p50 {s.percentile(50):.2f} ms, p99 {s.percentile(99):.2f} ms"
        + (" (cut short)" if s.cut_short else ""),
        f"- CPU ms per send: client {_ms(s.cpu.client, s)}, server {_ms(s.cpu.server, s)}, "
        f"postgres {_ms(s.cpu.postgres, s)}; cores busy: {v.busy}",
        f"- {v.text[0].upper()}{v.text[1:]}",
        "",
    ]
    return "\n".join(out)


def append(path: Path, section: str) -> None:
    """Add this run's section at the end; other sections stay as they are."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(text.rstrip("\n") + "\n\n" + section)


def _how(opts: Options) -> str:
    if opts.subscribe == "sql":
        return "SQL (INSERT … SELECT)"
    calls = -(-opts.subscribers // SUBSCRIBE_CHUNK)
    return f"the API ({calls} POST /v3/topics/{{id}}/users of up to {SUBSCRIBE_CHUNK:,})"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(m: Measured) -> str:
    if not m.fanout_per_cpu or not m.copy_per_cpu:
        return "-"
    return f"{m.fanout_per_cpu / m.copy_per_cpu:.3f}"


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def _ms(cpu_seconds: float | None, sample: Sample) -> str:
    if cpu_seconds is None or not sample.done:
        return "-"
    return f"{cpu_seconds / sample.done * 1000:.2f}"


def _ok(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()


if __name__ == "__main__":
    main()
