"""The cost of Herald's bounded HTTP protocol over uvicorn's own httptools protocol.

    python -m bench.protocol [--rounds 4] [--seconds 4] [--quick]

Each round serves a trivial ASGI app with each protocol in turn (a fresh uvicorn process each)
and drives it with wrk (32 connections); the server's CPU time per request, read from /proc,
is what to compare: with a trivial app it is nearly all protocol and event-loop work."""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.seed import progress

ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys
import uvicorn
from app.http_protocol import Limits, bounded

async def app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

kind, port = sys.argv[1], int(sys.argv[2])
http = "httptools" if kind == "uvicorn" else bounded(Limits(16384, 100, 10000, 10.0, 30.0, 5.0))
uvicorn.run(app, port=port, http=http, log_level="warning", access_log=False, lifespan="off")
"""
_DONE = re.compile(r"(\d+) requests in ")
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def _measure(kind: str, seconds: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one fresh server."""
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port)], cwd=ROOT)
    try:
        _ready(port)
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t1", "-c32", "-d1s", url], capture_output=True, check=True)
        before = _cpu_seconds(proc.pid)
        out = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{seconds}s", url], capture_output=True, text=True, check=True
        ).stdout
        cpu = _cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(10)
    done, rate = _DONE.search(out), _RATE.search(out)
    if done is None or rate is None:
        raise SystemExit(f"wrk printed no totals:\n{out}")
    return float(rate.group(1)), cpu * 1e6 / int(done.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.protocol", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="one 1 s round (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 1
    results: dict[str, list[tuple[float, float]]] = {"uvicorn": [], "herald": []}
    for _ in range(args.rounds):
        for kind in results:
            rate, cpu = _measure(kind, args.seconds)
            results[kind].append((rate, cpu))
            progress(f"bench.protocol: {kind} {rate:,.0f} req/s, {cpu:.1f} server CPU µs/request")
    medians = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    for kind, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        print(f"{kind}: median {rate:,.0f} req/s, {medians[kind]:.1f} server CPU µs/request")
    extra = medians["herald"] - medians["uvicorn"]
    print(
        f"RESULT uvicorn_us={medians['uvicorn']:.2f} herald_us={medians['herald']:.2f} "
        f"extra_us={extra:.2f}"
    )


if __name__ == "__main__":
    main()
