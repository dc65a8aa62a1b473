"""Profile the server under load: py-spy samples `herald serve` while wrk drives one route.

    python -m bench.all --keep                 # once: seed the database and keep it
    python -m bench.profile inbox              # then: the inbox page of u0 at 32 connections
    python -m bench.profile sends --seconds 10
    python -m bench.profile sends --cpu --runs 3 --checkout /work/main   # no py-spy: CPU

Prints the functions that held the most samples, by own time and by inclusive time (only
Herald's, FastAPI's, Starlette's, SQLAlchemy's, asyncpg's and pydantic's frames, so the
event loop's own frames do not crowd the list). Needs py-spy (`pip install py-spy`) and root
or ptrace rights; the raw collapsed stacks are kept with --keep-raw.

With --cpu, no profiler: --runs runs of the route, each alternated with a run of /health,
print req/s, the ratio to /health and the CPU milliseconds per request of the server and of
PostgreSQL; --checkout serves another checkout's code (e.g. main) on the same database, so
that before and after are measured one after the other under the same machine load."""

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg

from app.embedded import EmbeddedPostgres
from bench import wrk
from bench.all import DATA_DIR
from bench.load import Processes
from bench.seed import BIG_USER, progress
from bench.server import app_keys, asyncpg_url, beside, herald, plain, postmaster_pid

_MODULES = ("/app/", "fastapi", "starlette", "sqlalchemy", "asyncpg", "pydantic", "uvicorn")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("route", choices=("inbox", "sends", "health"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database-url", help="the server bench.all --keep used")
    parser.add_argument("--database-name", default="herald_bench_all")
    parser.add_argument("--keep-raw", type=Path, help="write py-spy's collapsed stacks here")
    parser.add_argument("--cpu", action="store_true", help="measure CPU per request, no py-spy")
    parser.add_argument("--runs", type=int, default=3, help="with --cpu: runs of each (3)")
    parser.add_argument("--checkout", type=Path, help="with --cpu: serve this checkout's app")
    args = parser.parse_args(argv)
    if args.cpu:
        _measure_cpu(args)
        return
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("bench.profile needs py-spy (pip install py-spy)")
    embedded = None if args.database_url else EmbeddedPostgres(DATA_DIR)
    server_url = asyncpg_url(args.database_url) if args.database_url else ""
    if embedded is not None:
        server_url = embedded.start()
    try:
        url = beside(server_url, args.database_name)
        key, secret = asyncio.run(_keys(url))
        with herald(url) as (base, proc):
            stacks = asyncio.run(_profile(args, base, proc.pid, key, secret))
    finally:
        if embedded is not None:
            embedded.stop()
    if args.keep_raw:
        args.keep_raw.write_text(stacks)
    print(summary(stacks, top=args.top))


def _measure_cpu(args: argparse.Namespace) -> None:
    embedded = None if args.database_url else EmbeddedPostgres(DATA_DIR)
    server_url = asyncpg_url(args.database_url) if args.database_url else ""
    if embedded is not None:
        server_url = embedded.start()
    try:
        url = beside(server_url, args.database_name)
        key, secret = asyncio.run(_keys(url))
        with herald(url, cwd=args.checkout) as (base, proc):
            lines = asyncio.run(_cpu_runs(args, url, base, proc.pid, key, secret))
    finally:
        if embedded is not None:
            embedded.stop()
    print("\n".join(lines))


async def _cpu_runs(
    args: argparse.Namespace, url: str, base: str, pid: int, key: str, secret: str
) -> list[str]:
    processes = Processes(server_pid=pid, postmaster_pid=await postmaster_pid(plain(url)))
    route, headers, script, script_args = _target(args.route, base, key, secret)
    common = {"connections": args.connections, "seconds": args.seconds, "processes": processes}
    await wrk.run(
        route,
        label="warm",
        headers=headers,
        script=script,
        script_args=script_args,
        connections=args.connections,
        seconds=2,
    )
    lines = [f"load average before: {_load()}", f"code: {args.checkout or 'this checkout'}"]
    lines.append("run | req/s | /health req/s | ratio | CPU ms/req server / postgres | /health")
    for n in range(args.runs):
        run = await wrk.run(
            route,
            label=args.route,
            headers=headers,
            script=script,
            script_args=script_args,
            **common,
        )
        health = await wrk.run(f"{base}/health", label="health", **common)
        lines.append(
            f"{n + 1} | {run.rate:,.0f} | {health.rate:,.0f} | {run.rate / health.rate:.3f} | "
            f"{_per_request(run)} | {_per_request(health)}"
        )
    lines.append(f"load average after: {_load()}")
    return lines


def _per_request(run: wrk.Run) -> str:
    cpu, n = run.cpu, max(run.requests, 1)
    server = "?" if cpu.server is None else f"{1000 * cpu.server / n:.2f}"
    postgres = "?" if cpu.postgres is None else f"{1000 * cpu.postgres / n:.2f}"
    return f"{server} / {postgres}"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _target(
    route: str, base: str, key: str, secret: str
) -> tuple[str, dict[str, str], str | None, list[str] | None]:
    headers: dict[str, str] = {"X-ENGAGESPOT-API-KEY": key}
    if route == "inbox":
        headers["X-ENGAGESPOT-USER-ID"] = BIG_USER
        return f"{base}/v3/notifications", headers, None, None
    if route == "sends":
        headers["X-ENGAGESPOT-API-SECRET"] = secret
        return f"{base}/v3/notifications", headers, wrk.SEND_SCRIPT, ["9000"]
    return f"{base}/health", {}, None, None


async def _keys(url: str) -> tuple[str, str]:
    try:
        keys = await app_keys(url)
    except asyncpg.InvalidCatalogNameError:
        keys = None  # bench.all without --keep dropped it
    if keys is None:
        raise SystemExit("no bench database: run `python -m bench.all --keep` first")
    return keys.api_key, keys.api_secret


async def _profile(args: argparse.Namespace, base: str, pid: int, key: str, secret: str) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    headers: dict[str, str] = {"X-ENGAGESPOT-API-KEY": key}
    url, script, script_args = f"{base}/v3/notifications", None, None
    if args.route == "inbox":
        headers["X-ENGAGESPOT-USER-ID"] = BIG_USER
    elif args.route == "sends":
        headers["X-ENGAGESPOT-API-SECRET"] = secret
        script, script_args = wrk.SEND_SCRIPT, ["9000"]
    else:
        url, headers = f"{base}/health", {}
    # Warm up first, so the profile holds the steady state.
    await wrk.run(
        url,
        label="warm",
        connections=args.connections,
        seconds=2,
        headers=headers,
        script=script,
        script_args=script_args,
    )
    with tempfile.TemporaryDirectory(prefix="herald-spy-") as tmp:
        out = Path(tmp) / "stacks.txt"
        spy_proc = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(args.seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run = await wrk.run(
            url,
            label=args.route,
            connections=args.connections,
            seconds=args.seconds,
            headers=headers,
            script=script,
            script_args=script_args,
        )
        await asyncio.wait_for(spy_proc.wait(), 60)
        progress(f"profile: {args.route}: {run.rate:,.0f} req/s, p50 {run.p50:.2f} ms under py-spy")
        return out.read_text()


def summary(stacks: str, *, top: int) -> str:
    """Top functions by own samples and by inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.splitlines():
        frames_part, _, count_part = line.rpartition(" ")
        if not frames_part or not count_part.isdigit():
            continue
        n = int(count_part)
        total += n
        frames = frames_part.split(";")
        own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames if any(m in f for m in _MODULES)}:
            inclusive[name] += n
    if not total:
        return "no samples"
    lines = [f"samples: {total}", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive (Herald and library frames):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # py-spy writes `function (path/to/file.py:line)`; keep the function and the file's tail.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    tail = "/".join(parts[-2:]) if parts else path
    return f"{name} ({tail})"


if __name__ == "__main__":
    main()
