"""Raw request rates of a real `herald serve`, measured with wrk: `/health` and 1-recipient sends.

    python -m bench.rates [--runs 3] [--seconds 5] [--connections 32] [--env NAME=VALUE ...]

Each run is one wrk invocation; the medians are what the report quotes. wrk shares the machine's
cores with the server and PostgreSQL, so compare rates taken in the same run of this script (or
one right after the other) only. The server's CPU time per request (from /proc) depends much
less on what else runs on the machine: compare those when the machine is busy."""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.runtime import create_app_record, migrate
from bench.seed import progress
from bench.server import KEYRING, asyncpg_url, drop, exclusive, herald, recreate

_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_DONE = re.compile(r"(\d+) requests in ")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _lua_send(api_key: str, api_secret: str) -> str:
    body = json.dumps({"notification": {"title": "wrk"}, "sendTo": {"recipients": ["wrk-user"]}})
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-ENGAGESPOT-API-KEY"] = "{api_key}"\n'
        f'wrk.headers["X-ENGAGESPOT-API-SECRET"] = "{api_secret}"\n'
    )


@dataclass(frozen=True)
class Run:
    rate: float  # requests/s
    cpu_ms: float  # server CPU per request


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, *, seconds: int, connections: int, script: Path | None, pid: int) -> Run:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    cpu = _cpu_seconds(pid)
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    cpu = _cpu_seconds(pid) - cpu
    rate = _RATE.search(out)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    bad = _NON_2XX.search(out)
    errors = _ERRORS.search(out)
    if bad is not None or (errors is not None and any(int(n) for n in errors.groups())):
        raise SystemExit(f"wrk saw failures:\n{out}")
    done = _DONE.search(out)
    assert done is not None, out
    return Run(float(rate.group(1)), cpu * 1000 / max(1, int(done.group(1))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rates", description=__doc__)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database-name", default="herald_bench_rates")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--quick", action="store_true", help="one 1 s run of each (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 1
    if shutil.which("wrk") is None:
        raise SystemExit("bench.rates needs wrk (apt-get install wrk)")
    env = dict(item.split("=", 1) for item in args.env)
    with exclusive(args.database_url, args.database_name):
        url = asyncpg_url(asyncio.run(recreate(args.database_url, args.database_name)))
        migrate(url)
        made = create_app_record(url, KEYRING, "wrk")
        script = Path(tempfile.mkdtemp(prefix="herald-wrk-")) / "send.lua"
        script.write_text(_lua_send(made.api_key, made.api_secret))
        runs: dict[str, list[Run]] = {"health": [], "send": []}
        with herald(url, extra_env=env) as (base, proc):
            for kind, path, lua in (
                ("health", "/health", None),
                ("send", "/v3/notifications", script),
            ):
                target = base + path
                _wrk(target, seconds=1, connections=args.connections, script=lua, pid=proc.pid)
                for _ in range(args.runs):
                    run = _wrk(
                        target,
                        seconds=args.seconds,
                        connections=args.connections,
                        script=lua,
                        pid=proc.pid,
                    )
                    runs[kind].append(run)
                    progress(
                        f"bench.rates: {kind} {run.rate:,.0f} req/s, "
                        f"server {run.cpu_ms:.3f} CPU ms/request"
                    )
        asyncio.run(drop(args.database_url, args.database_name))
    medians: dict[str, tuple[float, float]] = {}
    for kind, done in runs.items():
        rate = statistics.median(r.rate for r in done)
        cpu = statistics.median(r.cpu_ms for r in done)
        medians[kind] = (rate, cpu)
        shown = ", ".join(f"{r.rate:,.0f}" for r in done)
        print(
            f"{kind}: median {rate:,.0f} req/s (runs: {shown}); "
            f"server {cpu:.3f} CPU ms/request (median)"
        )
    print(
        f"RESULT health_per_s={medians['health'][0]:.1f} send_per_s={medians['send'][0]:.1f} "
        f"health_cpu_ms={medians['health'][1]:.3f} send_cpu_ms={medians['send'][1]:.3f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
