"""/health p99 at 4 connections, idle and during a 100,000-recipient fan-out, alone.

    python -m bench.all --keep      # once: seed the database and keep it
    python -m bench.stall --runs 3  # then: idle and fan-out /health runs, alternated

The same measurement as the last line of bench.all (the fan-out topic, the in-process
worker, wrk at 4 connections), without the other figures, so a change to the worker or the
request loop can be tried in a minute. Prints each run and the medians; the server's CPU
counts only `herald serve`'s own process."""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys

import asyncpg

from app.embedded import EmbeddedPostgres
from bench import wrk
from bench.all import DATA_DIR, Figure, Measured, Options, _app, _under_fanout, options
from bench.load import Processes
from bench.seed import BIG_USER
from bench.server import SECRET_KEY, AppKeys, beside, herald, plain, postmaster_pid


def _worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": url,
        "HERALD_LOG_LEVEL": "warning",
        "HERALD_SECRET_KEY": SECRET_KEY,
    }
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stall", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", help="the server bench.all --keep used")
    parser.add_argument(
        "--separate-worker",
        action="store_true",
        help="serve with --no-worker and run `herald worker` as a process of its own",
    )
    parser.add_argument(
        "--pages",
        action="store_true",
        help="instead: the inbox page of u0 and /health, alternated, CPU ms per request",
    )
    parser.add_argument("--connections", type=int, default=32, help="for --pages (32)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args(argv)
    opts = options(
        ["--reuse", "--runs", str(args.runs), "--seconds", str(args.seconds)]
        + (["--database-url", args.database_url] if args.database_url else [])
    )
    embedded = None if opts.database_url else EmbeddedPostgres(DATA_DIR)
    server_url = opts.database_url or (embedded.start() if embedded else "")
    try:
        url = beside(server_url, opts.database_name)
        app = asyncio.run(_app(url))
        extra = dict(e.split("=", 1) for e in args.env)
        serve_args = ["--no-worker"] if args.separate_worker else []
        with herald(url, extra_env=extra, args=serve_args) as (base, proc):
            worker = _worker(url) if args.separate_worker else None
            try:
                if args.pages:
                    asyncio.run(_pages(opts, url, base, proc.pid, app, args.connections))
                else:
                    asyncio.run(_measure(opts, url, base, proc.pid, app))
            finally:
                if worker is not None:
                    worker.terminate()
                    worker.wait(30)
    finally:
        if embedded is not None:
            embedded.stop()


async def _pages(opts: Options, url: str, base: str, pid: int, app: AppKeys, c: int) -> None:
    processes = Processes(server_pid=pid, postmaster_pid=await postmaster_pid(plain(url)))
    user = {"X-ENGAGESPOT-API-KEY": app.api_key, "X-ENGAGESPOT-USER-ID": BIG_USER}
    figures: dict[str, list[wrk.Run]] = {"/health": [], "inbox u0": []}
    for path, headers in (("/health", {}), ("/v3/notifications", user)):
        await wrk.run(f"{base}{path}", label="warm", connections=c, seconds=1, headers=headers)
    for _ in range(opts.runs):
        for (name, runs), (path, headers) in zip(
            figures.items(), (("/health", {}), ("/v3/notifications", user)), strict=True
        ):
            runs.append(
                await wrk.run(
                    f"{base}{path}",
                    label=name,
                    connections=c,
                    seconds=opts.seconds,
                    headers=headers,
                    processes=processes,
                )
            )
    for name, runs in figures.items():
        for r in runs:
            server = 1000 * (r.cpu.server or 0) / max(1, r.requests)
            postgres = 1000 * (r.cpu.postgres or 0) / max(1, r.requests)
            print(
                f"{name:9} c={c} {r.rate:7.0f} req/s  p50 {r.p50:6.2f}  p99 {r.p99:7.2f} ms  "
                f"CPU ms/request: server {server:.3f} postgres {postgres:.3f}",
                flush=True,
            )


async def _measure(opts: Options, url: str, base: str, pid: int, app: AppKeys) -> None:
    dsn = plain(url)
    processes = Processes(server_pid=pid, postmaster_pid=await postmaster_pid(dsn))
    backend = {"X-ENGAGESPOT-API-KEY": app.api_key, "X-ENGAGESPOT-API-SECRET": app.api_secret}
    idle = Figure("/health c=4 idle")

    async def health(c: int) -> wrk.Run:
        return await wrk.run(
            f"{base}/health",
            label=f"GET /health c={c}",
            connections=c,
            seconds=opts.seconds,
            processes=processes,
        )

    await wrk.run(f"{base}/health", label="warm", connections=4, seconds=1)
    measured = Measured()
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(opts.runs):
            idle.runs.append(await health(4))
            one = opts.__class__(**{**opts.__dict__, "runs": 1})
            await _under_fanout(one, base, backend, conn, health, measured)
    finally:
        await conn.close()
    (fan,) = measured.figures.values()
    for name, runs in (("idle", idle.runs), ("fan-out", fan.runs)):
        for r in runs:
            print(
                f"{name:8} p50 {r.p50:6.2f} ms  p99 {r.p99:7.2f} ms  {r.rate:7.0f} req/s  "
                f"cpu s server {r.cpu.server or 0:.2f} postgres {r.cpu.postgres or 0:.2f}",
                flush=True,
            )
        print(f"{name:8} median p99 {statistics.median(r.p99 for r in runs):.2f} ms", flush=True)
    print(f"fan-outs ended within runs: {measured.fanouts_done}", flush=True)


if __name__ == "__main__":
    main()
