"""Raw request rates of a real `herald serve`, measured with wrk: `/health` and 1-recipient sends.

    python -m bench.wrk [--runs 3] [--seconds 5] [--connections 32] [--env NAME=VALUE ...]

Each run is one wrk invocation; the medians are what the report quotes. wrk shares the machine's
cores with the server and PostgreSQL, so compare numbers taken in the same run of this script
(or one right after the other) only."""

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from app.runtime import create_app_record, migrate
from bench.seed import progress
from bench.server import asyncpg_url, drop, exclusive, herald, recreate

_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
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


def _wrk(url: str, *, seconds: int, connections: int, script: Path | None) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rate = _RATE.search(out)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    bad = _NON_2XX.search(out)
    errors = _ERRORS.search(out)
    if bad is not None or (errors is not None and any(int(n) for n in errors.groups())):
        raise SystemExit(f"wrk saw failures:\n{out}")
    return float(rate.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wrk", description=__doc__)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database-name", default="herald_bench_wrk")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--quick", action="store_true", help="one 1 s run of each (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 1
    if shutil.which("wrk") is None:
        raise SystemExit("bench.wrk needs wrk (apt-get install wrk)")
    env = dict(item.split("=", 1) for item in args.env)
    with exclusive(args.database_url, args.database_name):
        url = asyncpg_url(asyncio.run(recreate(args.database_url, args.database_name)))
        migrate(url)
        made = create_app_record(url, "wrk")
        script = Path(tempfile.mkdtemp(prefix="herald-wrk-")) / "send.lua"
        script.write_text(_lua_send(made.api_key, made.api_secret))
        rates: dict[str, list[float]] = {"health": [], "send": []}
        with herald(url, extra_env=env) as (base, _):
            for kind, path, lua in (
                ("health", "/health", None),
                ("send", "/v3/notifications", script),
            ):
                _wrk(base + path, seconds=1, connections=args.connections, script=lua)  # warm-up
                for _ in range(args.runs):
                    rate = _wrk(
                        base + path, seconds=args.seconds, connections=args.connections, script=lua
                    )
                    rates[kind].append(rate)
                    progress(f"bench.wrk: {kind} {rate:,.0f} req/s")
        asyncio.run(drop(args.database_url, args.database_name))
    for kind, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{kind}: median {statistics.median(values):,.0f} req/s (runs: {shown})")
    health, send = (statistics.median(rates[k]) for k in ("health", "send"))
    print(f"RESULT health_per_s={health:.1f} send_per_s={send:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
