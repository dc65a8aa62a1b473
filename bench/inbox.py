"""Benchmark sends and the inbox page of a user with a large inbox, against same-run baselines.

    python -m bench.inbox            # 1,000,000 rows, 100,000 for the measured user
    python -m bench.inbox --quick    # a smoke run, 10 to 30 seconds

It starts its own PostgreSQL (pgserver, in bench/data/) unless given --database-url, creates
a fresh database, seeds it with SQL, starts `python -m app.cli serve` on 127.0.0.1 and drives
it with httpx from this process. Every rate is also given as a ratio to a baseline measured in
the same run: GET /health through the same server and client (the HTTP floor), and the
endpoint's own SQL statements run directly with asyncpg (the SQL floor)."""

import argparse
import asyncio
import multiprocessing
import re
import subprocess
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench import report
from bench.client import HttpSpec, Kind, http_phase, http_phase_sync, recipient, send_body
from bench.load import Cpu, Operation, Part, Processes, Sample, closed_loop, run_local
from bench.seed import BIG_USER, Seeded, Shape, check, progress, seed
from bench.server import (
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
from bench.sql import Captured, record, replay, with_new_request

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "RESULTS.md"


@dataclass(frozen=True)
class Options:
    shape: Shape
    sends: int
    reads: int
    concurrency: int
    clients: int
    rounds: int
    max_seconds: float
    database_url: str | None
    database_name: str
    data_dir: Path
    results: Path | None
    keep: bool
    quick: bool
    db_set: list[tuple[str, str]]
    extra_sql: list[str]

    @property
    def variant(self) -> str:
        """What this run changed from the schema and settings as shipped ("" for nothing)."""
        return "; ".join([f"{k}={v}" for k, v in self.db_set] + self.extra_sql)


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, help="notification rows in total (1,000,000)")
    parser.add_argument("--user-rows", type=int, help="rows of the measured user (100,000)")
    parser.add_argument("--users", type=int, help="other users sharing the rest (9,000)")
    parser.add_argument("--sends", type=int, help="1-recipient sends to time (3,000)")
    parser.add_argument("--reads", type=int, help="inbox pages to time (3,000)")
    parser.add_argument("--concurrency", type=int, help="requests in flight (10)")
    parser.add_argument("--clients", type=int, help="HTTP client processes sharing the load (1)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per phase (3)")
    parser.add_argument("--max-seconds", type=float, help="cap per timed phase (180)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    add_database_arguments(
        parser,
        data_dir=DATA_DIR,
        name_help="dropped and recreated (herald_bench; herald_bench_quick)",
        results="update",
    )
    parser.add_argument(
        "--db-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ALTER DATABASE … SET for the fresh database, to try a planner setting",
    )
    parser.add_argument(
        "--extra-sql",
        action="append",
        default=[],
        metavar="SQL",
        help="run after seeding and before VACUUM ANALYZE, to try an index",
    )
    args = parser.parse_args(argv)
    db_set = []
    for item in args.db_set:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_.]*", key.strip()):
            parser.error(f"--db-set wants NAME=VALUE, not {item!r}")
        db_set.append((key.strip(), value.strip()))
    quick = bool(args.quick)
    defaults = (10_000, 1_000, 100, 100, 100, 4, 1, 20.0) if quick else None
    big = defaults or (1_000_000, 100_000, 9_000, 3_000, 3_000, 10, 3, 180.0)
    shape = Shape(
        rows=args.rows or big[0],
        user_rows=args.user_rows or big[1],
        users=args.users or big[2],
    )
    check(shape)
    return Options(
        shape=shape,
        sends=args.sends or big[3],
        reads=args.reads or big[4],
        concurrency=args.concurrency or big[5],
        clients=args.clients or 1,
        rounds=args.rounds or big[6],
        max_seconds=args.max_seconds or big[7],
        database_url=given_server(args.database_url),
        database_name=args.database_name or ("herald_bench_quick" if quick else "herald_bench"),
        data_dir=args.data_dir,
        results=args.results or (None if quick else RESULTS),
        keep=bool(args.keep),
        quick=quick,
        db_set=db_set,
        extra_sql=list(args.extra_sql),
    )


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    command = report.command_line("bench.inbox", argv)
    started = datetime.now(UTC)
    with (
        postgres_server(opts.database_url, opts.data_dir) as server_url,
        exclusive(server_url, opts.database_name),
    ):
        _run(opts, server_url, command, started)


def _run(opts: Options, server_url: str, command: str, started: datetime) -> None:
    """One benchmark run on a fresh database: seed, serve, measure, report."""
    url, made = fresh_app_database(server_url, opts.database_name, opts.db_set)
    seeded = asyncio.run(_seed(url, app_id=made.id, shape=opts.shape, extra=opts.extra_sql))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(opts.clients, mp_context=spawn) as workers, herald(url) as server:
        credentials = (made.api_key, made.api_secret)
        run_ = asyncio.run(_measure(opts, url, server, seeded, credentials, workers))
    machine = asyncio.run(report.machine(plain(url)))
    result = report.Result(
        started=started,
        command=command,
        machine=machine,
        opts=report.Sizes(
            rows=opts.shape.rows,
            user_rows=opts.shape.user_rows,
            users=opts.shape.users,
            sends=opts.sends,
            reads=opts.reads,
            concurrency=opts.concurrency,
            clients=opts.clients,
            rounds=opts.rounds,
            variant=opts.variant,
        ),
        seeded=seeded,
        samples=run_.samples,
        plans=run_.plans,
        floors=run_.floors,
    )
    print(report.table(result), flush=True)
    if opts.results is not None:
        report.update(opts.results, result)
        progress(f"bench: wrote a section to {opts.results}")
    if not opts.keep:
        asyncio.run(drop(server_url, opts.database_name))


@dataclass(frozen=True)
class Measured:
    samples: list[Sample]
    plans: list[report.Plan]
    floors: dict[str, list[str]]  # endpoint -> labels of the statements its SQL floor replays


@dataclass(frozen=True)
class Phase:
    name: str
    count: int
    sql: Operation | None = None  # run in this process against an asyncpg pool
    http: HttpSpec | None = None  # run by the HTTP client process(es)
    concurrency: int | None = None  # None: --concurrency


async def _measure(
    opts: Options,
    url: str,
    server: tuple[str, subprocess.Popen[bytes]],
    seeded: Seeded,
    credentials: tuple[str, str],
    workers: ProcessPoolExecutor,
) -> Measured:
    (base, server_process), (api_key, api_secret) = server, credentials
    server_pid = server_process.pid
    dsn = plain(url)
    processes = Processes(server_pid=server_pid, postmaster_pid=await postmaster_pid(dsn))
    c, rounds = opts.concurrency, opts.rounds
    warm = max(20, min(200, opts.reads // 10))
    user_headers = {"X-ENGAGESPOT-API-KEY": api_key, "X-ENGAGESPOT-USER-ID": BIG_USER}
    backend_headers = {"X-ENGAGESPOT-API-KEY": api_key, "X-ENGAGESPOT-API-SECRET": api_secret}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        first = await client.get("/v3/notifications", headers=user_headers)
    report.verify_page(first.json(), seeded)

    # The SQL floors replay what the app itself issued for one inbox page and for a few
    # sends (one per recipient; recorded after the reads, as sends touch the table).
    [page] = await record(url, [("GET", "/v3/notifications", user_headers, None)])
    report.verify_page(page.response.json(), seeded)
    inbox_statements = page.statements
    sent: list[tuple[list[Captured], uuid.UUID]] = []
    floors = {"GET /v3/notifications": [s.label for s in inbox_statements]}

    async def record_sends() -> None:
        templates = [recipient(i, opts.shape.users) for i in range(min(20, opts.shape.users))]
        recorded = await record(
            url,
            [("POST", "/v3/notifications", backend_headers, send_body(0, u)) for u in templates],
        )
        sent.extend((r.statements, uuid.UUID(r.response.json()["requestId"])) for r in recorded)
        floors["POST /v3/notifications"] = [s.label for s in sent[0][0]]
        _statements("POST /v3/notifications", floors["POST /v3/notifications"])

    _statements("GET /v3/notifications", floors["GET /v3/notifications"])

    def http(kind: Kind, headers: dict[str, str], count: int, conc: int = c) -> HttpSpec:
        per_round = -(-count // rounds)
        limit = opts.max_seconds / rounds
        return HttpSpec(kind, base, headers, per_round, conc, limit, opts.shape.users, warm)

    # One request at a time: the latency a lone user sees, without queueing.
    alone = max(30, opts.reads // 10)

    async with asyncpg.create_pool(dsn, min_size=c, max_size=c) as pool:

        async def inbox_sql(_: int) -> None:
            async with pool.acquire() as conn:
                await replay(conn, inbox_statements)

        async def send_sql(i: int) -> None:
            statements, request_id = sent[i % len(sent)]
            async with pool.acquire() as conn:
                await replay(conn, with_new_request(statements, request_id))

        reads = [
            Phase("GET /health", opts.reads, http=http("health", {}, opts.reads)),
            Phase("inbox SQL (asyncpg)", opts.reads, sql=inbox_sql),
            Phase(
                "GET /v3/notifications", opts.reads, http=http("inbox", user_headers, opts.reads)
            ),
            Phase("GET /health c=1", alone, http=http("health", {}, alone, 1), concurrency=1),
            Phase("inbox SQL (asyncpg) c=1", alone, sql=inbox_sql, concurrency=1),
            Phase(
                "GET /v3/notifications c=1",
                alone,
                http=http("inbox", user_headers, alone, 1),
                concurrency=1,
            ),
        ]
        sends = [
            Phase("send SQL (asyncpg)", opts.sends, sql=send_sql),
            Phase(
                "POST /v3/notifications",
                opts.sends,
                http=http("send", backend_headers, opts.sends),
            ),
        ]
        # The same page again once the sends have churned the table (see the plans).
        again = [
            Phase(f"{p.name} after sends", p.count, sql=p.sql, http=p.http) for p in reads[1:3]
        ]
        samples = {p.name: Sample(p.name) for p in [*reads, *sends, *again]}
        runner = _Runner(opts, processes, workers, warm)
        for r in range(rounds):
            for phase in reads:
                await runner.round(phase, samples[phase.name], r)
        async with pool.acquire() as conn:
            plans = await report.explain(
                conn, inbox_statements, modes=("custom", "generic", "auto")
            )
        await record_sends()
        for group in (sends, again):
            for r in range(rounds):
                for phase in group:
                    await runner.round(phase, samples[phase.name], r)
        async with pool.acquire() as conn:
            # New rows land in old heap pages with free space and clear their all-visible
            # bits; until (auto)vacuum runs, index-only scans fetch those pages.
            later = await report.explain(conn, inbox_statements, modes=("auto",))
            plans += [replace(p, mode=f"{p.mode}, after sends") for p in later]
            added = await conn.fetchval("SELECT count(*) FROM notifications") - seeded.table_rows
        measured = sum(samples[p.name].done for p in sends)
        if added < measured:
            raise RuntimeError(f"{measured} sends answered but only {added} inbox rows appeared")
    return Measured(list(samples.values()), plans, floors)


class _Runner:
    def __init__(
        self, opts: Options, processes: Processes, workers: ProcessPoolExecutor, warm: int
    ):
        self.opts = opts
        self.processes = processes
        self.workers = workers
        self.warm = warm

    async def round(self, phase: Phase, sample: Sample, r: int) -> None:
        opts = self.opts
        count = -(-phase.count // opts.rounds)
        progress(f"bench: {phase.name}: round {r + 1}/{opts.rounds}, {count:,} requests")
        warmup = self.warm if r == 0 else 0
        deadline = time.perf_counter() + opts.max_seconds / opts.rounds
        if phase.sql is not None:
            operation, concurrency = phase.sql, phase.concurrency or opts.concurrency
            if warmup:
                await closed_loop(operation, warmup, concurrency, deadline, [])
            before = self.processes.cpu()
            parts = [
                await run_local(operation, count=count, concurrency=concurrency, deadline=deadline)
            ]
            cpu = self.processes.cpu() - before
        else:
            assert phase.http is not None
            spec = replace(phase.http, offset=r * count, warmup=warmup)
            if opts.clients == 1:
                marks: list[Cpu] = []
                parts = [await http_phase(spec, timing=lambda: marks.append(self.processes.cpu()))]
                cpu = self.processes.cpu() - marks[0]
            else:
                # Warm up in the worker processes first (this also starts them), so that the
                # CPU read around the timed call covers only connection set-up and the load.
                if warmup:
                    await self._spread(replace(spec, count=0))
                before = self.processes.cpu()
                parts = await self._spread(replace(spec, warmup=0))
                cpu = self.processes.cpu() - before
                cpu = replace(cpu, client=cpu.client + sum(p.client_cpu for p in parts))
        sample.add(parts, cpu, wanted=count)
        wall = max(p.ended for p in parts) - min(p.started for p in parts)
        rate = sum(p.done for p in parts) / max(1e-9, wall)
        progress(f"bench: {phase.name}: {rate:,.0f}/s")

    async def _spread(self, spec: HttpSpec) -> list[Part]:
        """Split one round over the client processes (counts and connections divided)."""
        n, loop = self.opts.clients, asyncio.get_running_loop()
        specs = [
            replace(
                spec,
                count=_share(spec.count, n, k),
                concurrency=max(1, _share(spec.concurrency, n, k)),
                offset=spec.offset * n + k * spec.count,
                warmup=_share(spec.warmup, n, k),
            )
            for k in range(n)
        ]
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(self.workers, http_phase_sync, s) for s in specs)
            )
        )


def _statements(endpoint: str, labels: list[str]) -> None:
    progress(f"bench: {endpoint} issues {len(labels)} statements: {', '.join(labels)}")


def _share(total: int, n: int, k: int) -> int:
    return total // n + (1 if k < total % n else 0)


async def _seed(url: str, *, app_id: int, shape: Shape, extra: list[str]) -> Seeded:
    conn = await asyncpg.connect(plain(url), command_timeout=1800)
    try:
        return await seed(conn, app_id=app_id, shape=shape, extra_sql=extra)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
