"""Drive a server with `wrk` and read its figures: requests/s and the latency distribution."""

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.load import Cpu, Processes

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m),", re.MULTILINE)
_ERRORS = re.compile(r"^\s+Non-2xx or 3xx responses: (\d+)", re.MULTILINE)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

# Sends go to u1 … u<users>, a different recipient on every request of every thread.
SEND_SCRIPT = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  users = tonumber(args[1])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local n = tid * 1000003 + counter
  local body = '{"notification":{"title":"Bench ' .. n .. '"},"sendTo":{"recipients":["u'
    .. (n % users) + 1 .. '"]}}'
  return wrk.format(nil, nil, nil, body)
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run: what it printed, parsed, and the CPU the processes used meanwhile."""

    label: str
    connections: int
    seconds: float
    requests: int
    rate: float
    p50: float  # milliseconds
    p75: float
    p90: float
    p99: float
    cpu: Cpu
    output: str


def available() -> bool:
    return shutil.which("wrk") is not None


async def run(
    url: str,
    *,
    label: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: str | None = None,
    script_args: list[str] | None = None,
    processes: Processes | None = None,
    threads: int = 2,
) -> Run:
    """Run wrk against `url` for `seconds`; refuse a run with failed requests."""
    if not available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory(prefix="herald-wrk-") as tmp:
        if script is not None:
            path = Path(tmp) / "script.lua"
            path.write_text(script)
            command += ["-s", str(path)]
        command.append(url)
        if script_args:
            command += ["--", *script_args]
        before = processes.cpu() if processes else Cpu()
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out_bytes, _ = await proc.communicate()
        cpu = (processes.cpu() - before) if processes else Cpu()
    output = out_bytes.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{output}")
    return parse(output, label=label, connections=connections, cpu=cpu)


def parse(output: str, *, label: str, connections: int, cpu: Cpu) -> Run:
    rate = _RATE.search(output)
    total = _TOTAL.search(output)
    percentiles = {p: float(v) * _UNITS[u] for p, v, u in _PERCENTILE.findall(output)}
    if rate is None or total is None or len(percentiles) != 4:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = _ERRORS.search(output)
    if errors is not None and int(errors.group(1)) > 0:
        raise RuntimeError(f"{label}: {errors.group(1)} requests failed:\n{output}")
    sockets = _SOCKET.search(output)
    if sockets is not None and any(int(x) for x in sockets.groups()):
        raise RuntimeError(f"{label}: socket errors:\n{output}")
    return Run(
        label=label,
        connections=connections,
        seconds=float(total.group(2)) * _UNITS[total.group(3)] / 1000,
        requests=int(total.group(1)),
        rate=float(rate.group(1)),
        p50=percentiles["50"],
        p75=percentiles["75"],
        p90=percentiles["90"],
        p99=percentiles["99"],
        cpu=cpu,
        output=output,
    )
