"""What the metrics middleware costs a request: GET /health through wrk, metrics on and off.

    python -m bench.metrics            # 5 rounds of 10 s per side, wrk -t1 -c16
    python -m bench.metrics --quick    # 2 rounds of 1 s, a smoke run

It creates a fresh database (beside --database-url, or in pgserver in bench/data/metrics/),
starts two `python -m app.cli serve` on it, one with HERALD_METRICS=true and one with
HERALD_METRICS=false, and runs wrk against each in turn: a warm-up, then the timed rounds,
alternating which side goes first, so that both meet the same load from other programs.
Each side's number is the median of its rounds, in req/s and in the server's CPU time per
request (read from /proc, far less sensitive to other programs). It also times the two ASGI
layers alone, in this process, around an app that answers at once: the CPU they add to every
request."""

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics
from app.observability.middleware import Instrument, RouteProbe
from bench.load import Processes
from bench.seed import progress
from bench.server import (
    ROOT,
    add_database_arguments,
    drop,
    exclusive,
    given_server,
    herald,
    postgres_server,
    recreate,
)

DATA_DIR = ROOT / "bench" / "data" / "metrics"
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_LATENCY = re.compile(r"Latency\s+([\d.]+)(us|ms|s)")
_REQUESTS = re.compile(r"(\d+) requests in")


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: int
    connections: int
    calls: int
    database_url: str | None
    database_name: str
    data_dir: Path


def options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rounds", type=int, help="timed rounds per side (5)")
    parser.add_argument("--seconds", type=int, help="per round (10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (16)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s")
    add_database_arguments(parser, data_dir=DATA_DIR, name="herald_bench_metrics")
    args = parser.parse_args(argv)
    return Options(
        rounds=args.rounds or (2 if args.quick else 5),
        seconds=args.seconds or (1 if args.quick else 10),
        connections=args.connections,
        calls=20_000 if args.quick else 200_000,
        database_url=given_server(args.database_url),
        database_name=args.database_name,
        data_dir=args.data_dir,
    )


def main(argv: list[str] | None = None) -> None:
    opts = options(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.metrics needs wrk on PATH")
    with (
        postgres_server(opts.database_url, opts.data_dir) as server_url,
        exclusive(server_url, opts.database_name),
    ):
        # The first server started applies the migrations.
        url = asyncio.run(recreate(server_url, opts.database_name))
        try:
            _run(opts, url)
        finally:
            asyncio.run(drop(server_url, opts.database_name))


def _run(opts: Options, url: str) -> None:
    on_env = {"HERALD_METRICS": "true"}
    off_env = {"HERALD_METRICS": "false"}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    latency: dict[str, list[float]] = {"on": [], "off": []}
    # Server CPU per request hardly depends on what else runs on the machine; req/s does.
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    with (
        herald(url, extra_env=on_env) as (on, on_proc),
        herald(url, extra_env=off_env) as (off, off_proc),
    ):
        bases = {"on": on, "off": off}
        servers = {"on": Processes(on_proc.pid), "off": Processes(off_proc.pid)}
        for side, base in bases.items():
            _wrk(base, min(3, opts.seconds), opts.connections)  # warm-up
            progress(f"bench: metrics {side}: warmed up")
        for r in range(opts.rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for side in order:
                before = servers[side].cpu().server or 0.0
                rate, ms, done = _wrk(bases[side], opts.seconds, opts.connections)
                used = (servers[side].cpu().server or 0.0) - before
                rates[side].append(rate)
                latency[side].append(ms)
                cpu_us[side].append(used / done * 1e6)
                progress(
                    f"bench: round {r + 1}/{opts.rounds} metrics {side}: {rate:,.0f} req/s, "
                    f"{cpu_us[side][-1]:.0f} µs server CPU per request"
                )
    on_rate, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
    on_cpu, off_cpu = statistics.median(cpu_us["on"]), statistics.median(cpu_us["off"])
    cost_on, cost_off = _layers(opts.calls)
    print(
        "\n".join(
            [
                "",
                f"GET /health, wrk -t1 -c{opts.connections}, {opts.rounds} rounds of "
                f"{opts.seconds} s per side (median; every round in brackets)",
                f"  metrics on   {on_rate:>8,.0f} req/s  avg latency "
                f"{statistics.median(latency['on']):.2f} ms  {_list(rates['on'])}",
                f"  metrics off  {off_rate:>8,.0f} req/s  avg latency "
                f"{statistics.median(latency['off']):.2f} ms  {_list(rates['off'])}",
                f"  on ÷ off     {on_rate / off_rate:.3f}",
                f"Server CPU per request (median): on {on_cpu:.0f} µs, off {off_cpu:.0f} µs, "
                f"on ÷ off {on_cpu / off_cpu:.3f}  on {_list(cpu_us['on'])}  "
                f"off {_list(cpu_us['off'])}",
                f"In-process, {opts.calls:,} calls: Instrument + RouteProbe add "
                f"{cost_on - cost_off:.1f} µs per request ({cost_on:.1f} µs with them, "
                f"{cost_off:.1f} µs without, around an app that answers at once)",
                "",
                f"RESULT on_rps={on_rate:.0f} off_rps={off_rate:.0f} "
                f"ratio={on_rate / off_rate:.3f} cpu_us_on={on_cpu:.0f} cpu_us_off={off_cpu:.0f} "
                f"layer_us={cost_on - cost_off:.2f}",
            ]
        ),
        flush=True,
    )


def _wrk(base: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """(requests per second, mean latency in ms, requests) of one wrk run on GET /health."""
    run = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"{base}/health"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    if "Non-2xx" in run.stdout:
        raise RuntimeError(f"wrk saw errors:\n{run.stdout}")
    rate, latency = _RATE.search(run.stdout), _LATENCY.search(run.stdout)
    done = _REQUESTS.search(run.stdout)
    if rate is None or latency is None or done is None:
        raise RuntimeError(f"unexpected wrk output:\n{run.stdout}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[latency.group(2)]
    return float(rate.group(1)), float(latency.group(1)) * scale, int(done.group(1))


class _Route:
    path = "/health"


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = _Route()  # as the router does
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _layers(calls: int) -> tuple[float, float]:
    """µs per call with the two layers and without them."""
    scope: Scope = {"type": "http", "method": "GET", "path": "/health", "headers": []}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        return None

    async def timed(app: ASGIApp) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / calls * 1e6

    wrapped = Instrument(RouteProbe(_answer), metrics=Metrics())

    async def both() -> tuple[float, float]:
        # Interleaved halves, so a burst of load elsewhere hits both sides.
        with_layers = without = 0.0
        for _ in range(2):
            with_layers += await timed(wrapped) / 2
            without += await timed(_answer) / 2
        return with_layers, without

    return asyncio.run(both())


def _list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:,.0f}" for v in values) + "]"


if __name__ == "__main__":
    main()
