"""Realtime benchmark: send -> NEW_NOTIFICATION latency, and what idle sockets cost.

It starts its own PostgreSQL (pgserver, in bench/data/realtime/) unless given --database-url,
creates a fresh database, starts `python -m app.cli serve` on 127.0.0.1 with
HERALD_LOG_LEVEL=warning, creates an app through the admin API, and then:

1. connects --sockets socket.io clients (websocket transport, one user each: u0, u1, ...) from
   a separate worker process, reading the server's resident memory before and after;
2. sends --sends 1-recipient notifications (POST /v3/notifications) at --rate per second to
   random connected users, timing each POST until its 202 (the baseline) and until the
   NEW_NOTIFICATION event arrives on that user's socket (the clock is CLOCK_MONOTONIC, shared
   by the sender and the worker process);
3. reads the CPU time the server, PostgreSQL and the clients use while the sockets sit idle,
   once they have been connected for --idle-after seconds (so their heartbeats are counted);
4. with --memory-sockets above --sockets, connects more idle sockets and reads memory and idle
   CPU again.

The server, PostgreSQL, the socket clients and the sender all share this machine's cores: the
latencies include the clients' own scheduling, and other work on the machine shows up in them
(the load average and the machine's busy share are printed beside the numbers).

Prints a table, appends a dated section to bench/RESULTS.md (not for --quick unless --results
is given) and, with --json, writes the numbers as JSON.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import asyncpg

from bench.server import (
    SECRET_KEY,
    add_database_arguments,
    drop,
    free_port,
    postgres_server,
    recreate,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data" / "realtime"
RESULTS = ROOT / "bench" / "RESULTS.md"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024

# Hard caps, whatever the flags say.
SERVER_START_SECONDS = 90.0
CONNECT_SECONDS_PER_1000 = 120.0
ARRIVAL_GRACE_SECONDS = 15.0
MAX_IN_FLIGHT = 200
SATURATED = (
    "the server did not keep up with this rate (POSTs piled up or 202s came slower than "
    "sent): these latencies include queueing"
)


def progress(message: str) -> None:
    print(f"[realtime] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    sockets: int
    sends: int
    rate: float
    memory_sockets: int
    idle_seconds: float
    idle_after: float
    connect_concurrency: int
    warmup: int
    seed: int
    quick: bool
    database_url: str | None
    database_name: str
    data_dir: Path
    results: Path | None
    json_path: Path | None
    keep: bool
    command: str


def options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.realtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sockets", type=int, help="connected sockets, one user each (1000)")
    parser.add_argument("--sends", type=int, help="1-recipient sends to time (2000)")
    parser.add_argument("--rate", type=float, help="sends per second, open loop (50)")
    parser.add_argument(
        "--memory-sockets",
        type=int,
        help="after the sends, connect idle sockets up to this many in all and read memory "
        "again (5000; 0 to skip)",
    )
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (30)")
    parser.add_argument(
        "--idle-after",
        type=float,
        help="how long the last socket must have been connected before an idle window starts "
        "(25: engine.io's ping interval, so the window holds the sockets' heartbeats)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=20, help="handshakes at once")
    parser.add_argument("--warmup", type=int, help="untimed sends first (50)")
    parser.add_argument("--seed", type=int, default=1, help="picks the recipients")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    add_database_arguments(
        parser,
        data_dir=DATA_DIR,
        name="herald_bench_realtime",
        name_help="dropped and recreated",
        data_dir_help="for pgserver and logs",
        results="append to",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the numbers here")
    args = parser.parse_args(argv)

    quick: bool = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    sockets = int(pick(args.sockets, 1000, 20))
    sends = int(pick(args.sends, 2000, 40))
    rate = float(pick(args.rate, 50.0, 40.0))
    memory_sockets = int(pick(args.memory_sockets, 5000, 0))
    idle = float(pick(args.idle_seconds, 30.0, 2.0))
    idle_after = float(pick(args.idle_after, 25.0, 0.0))
    warmup = int(pick(args.warmup, 50, 5))
    if sockets < 1 or sends < 1 or rate <= 0 or idle <= 0:
        parser.error("--sockets, --sends, --rate and --idle-seconds must be positive")
    if memory_sockets and memory_sockets <= sockets:
        parser.error("--memory-sockets must exceed --sockets (or be 0)")
    shown = " ".join(
        quote(a, safe="/:=.,-_+") for a in (argv if argv is not None else sys.argv[1:])
    )
    return Options(
        sockets=sockets,
        sends=sends,
        rate=rate,
        memory_sockets=memory_sockets,
        idle_seconds=idle,
        idle_after=max(0.0, idle_after),
        connect_concurrency=max(1, args.connect_concurrency),
        warmup=max(0, warmup),
        seed=args.seed,
        quick=quick,
        database_url=args.database_url,
        database_name=args.database_name,
        data_dir=args.data_dir.resolve(),
        results=args.results or (None if quick else RESULTS),
        json_path=args.json_path,
        keep=args.keep,
        command=f".venv/bin/python -m bench.realtime {shown}".rstrip(),
    )


# ---------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (so index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime of waited-for children
    return ticks / TICK


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    total = sum(values[:8])  # without guest time, which user already counts
    return float(total - idle), float(total)


@dataclass
class Procs:
    server: int
    worker: int
    postmaster: int | None

    def postgres(self) -> float | None:
        if self.postmaster is None:
            return None
        # The postmaster's reaped-children counters hold backends that already exited.
        return cpu_seconds(self.postmaster, reaped=True) + sum(
            cpu_seconds(p) for p in children(self.postmaster)
        )

    def snapshot(self) -> "CpuSnap":
        busy, total = machine_busy()
        return CpuSnap(
            at=time.monotonic(),
            server=cpu_seconds(self.server),
            worker=cpu_seconds(self.worker),
            sender=cpu_seconds(os.getpid()),
            postgres=self.postgres(),
            busy=busy,
            total=total,
        )


@dataclass(frozen=True)
class CpuSnap:
    at: float
    server: float
    worker: float
    sender: float
    postgres: float | None
    busy: float
    total: float


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each party used over `seconds` of wall time."""

    seconds: float
    server: float
    postgres: float | None
    clients: float
    sender: float
    machine_busy_share: float  # of all cores, every process on the machine

    @staticmethod
    def between(a: CpuSnap, b: CpuSnap) -> "CpuUse":
        pg = None if a.postgres is None or b.postgres is None else b.postgres - a.postgres
        total = b.total - a.total
        return CpuUse(
            seconds=b.at - a.at,
            server=b.server - a.server,
            postgres=pg,
            clients=b.worker - a.worker,
            sender=b.sender - a.sender,
            machine_busy_share=(b.busy - a.busy) / total if total > 0 else 0.0,
        )

    def others(self, nproc: int) -> float:
        """Cores that programs other than this benchmark's kept busy, on average."""
        if self.seconds <= 0:
            return 0.0
        ours = self.server + (self.postgres or 0.0) + self.clients + self.sender
        return max(0.0, self.machine_busy_share * nproc - ours / self.seconds)

    def pct(self, used: float | None) -> str:
        """As a share of one core."""
        if used is None or self.seconds <= 0:
            return "n/a"
        return f"{100 * used / self.seconds:.2f}%"


# ---------------------------------------------------------------- database


def plain(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def postgres_facts(url: str) -> tuple[str, int | None, dict[str, str]]:
    """Server version, the postmaster's pid when it runs here and we may read it, settings."""
    conn = await asyncpg.connect(url)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        data_dir = str(await conn.fetchval("SHOW data_directory"))
        settings = {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("shared_buffers", "synchronous_commit", "max_connections")
        }
    finally:
        await conn.close()
    return version, postmaster_pid(Path(data_dir)), settings


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first) if Path(f"/proc/{first}").exists() else None
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- the server


class Server:
    """`python -m app.cli serve` as a subprocess on 127.0.0.1."""

    def __init__(self, database_url: str, data_dir: Path):
        self.token = "bench-" + secrets.token_hex(16)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_ADMIN_TOKEN": self.token,
            "HERALD_SECRET_KEY": SECRET_KEY,
            "HERALD_DATA_DIR": str(data_dir / "herald"),
            "HERALD_LOG_LEVEL": "warning",
            "HERALD_HOST": "127.0.0.1",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited early:\n{self.tail()}")
            try:
                async with http.get(
                    f"{self.base}/ready", timeout=aiohttp.ClientTimeout(total=2)
                ) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"herald did not become ready:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass(frozen=True)
class AppCreds:
    api_key: str
    api_secret: str

    def backend(self) -> dict[str, str]:
        return {"X-ENGAGESPOT-API-KEY": self.api_key, "X-ENGAGESPOT-API-SECRET": self.api_secret}


async def create_app(http: aiohttp.ClientSession, server: Server) -> AppCreds:
    async with http.post(
        f"{server.base}/admin/apps",
        json={"name": "bench-realtime"},
        headers={"Authorization": f"Bearer {server.token}"},
    ) as r:
        body = await r.json()
        if r.status not in (200, 201):
            raise RuntimeError(f"POST /admin/apps answered {r.status}: {body}")
    return AppCreds(api_key=body["apiKey"], api_secret=body["apiSecret"])


# ---------------------------------------------------------------- the socket worker process
#
# Protocol, one line each way. In (stdin): `connect PREFIX START END CONCURRENCY` connects users
# PREFIX<START>..PREFIX<END-1>; `quit` (or end of input) disconnects everything and exits.
# Out (stdout): `P ok failed` progress, `F index reason` a failed handshake, `C ok failed`
# a finished batch, `A title user monotonic_ns` a NEW_NOTIFICATION, `Q` before exiting.


async def worker_main(base: str, api_key: str) -> None:
    import socketio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # One HTTP session for every client; unlimited, since each websocket holds a connection.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    clients: list[Any] = []

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def connect(user: str) -> Any:
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=http)

        async def on_new(data: Any) -> None:
            at = time.monotonic_ns()
            item = data.get("notification") if isinstance(data, dict) else None
            title = item.get("title") if isinstance(item, dict) else None
            say(f"A {title} {user} {at}")

        client.on("NEW_NOTIFICATION", on_new)
        query = urlencode({"apiKey": api_key, "userId": user, "userSignature": "undefined"})
        clients.append(client)
        await client.connect(f"{base}?{query}", transports=["websocket"], wait_timeout=10)
        return client

    async def batch(prefix: str, start: int, end: int, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)
        ok = failed = 0

        async def one(i: int) -> None:
            nonlocal ok, failed
            async with gate:
                try:
                    await asyncio.wait_for(connect(f"{prefix}{i}"), 20)
                    ok += 1
                except Exception as exc:
                    failed += 1
                    say(f"F {i} {type(exc).__name__}")
                if (ok + failed) % 100 == 0:
                    say(f"P {ok} {failed}")

        await asyncio.gather(*(one(i) for i in range(start, end)))
        say(f"C {ok} {failed}")

    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        if line[0] == "connect":
            prefix, start, end, concurrency = line[1], int(line[2]), int(line[3]), int(line[4])
            await batch(prefix, start, end, concurrency)

    async def close(client: Any) -> None:
        # The server may already be gone; we are leaving either way.
        with contextlib.suppress(Exception):
            await client.disconnect()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(close(c) for c in clients)), 30)
    await http.close()
    say("Q")


class Worker:
    """The parent's side of the socket worker process."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.pid = proc.pid
        self.arrivals: dict[str, tuple[str, int]] = {}
        self.duplicates = 0
        self.arrived = asyncio.Event()
        self.control: asyncio.Queue[list[str]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, base: str, api_key: str) -> "Worker":
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.realtime",
            "--worker",
            base,
            api_key,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                await self.control.put(["EOF"])
                return
            parts = raw.decode(errors="replace").split()
            if not parts:
                continue
            if parts[0] == "A" and len(parts) == 4:
                title, user, at = parts[1], parts[2], int(parts[3])
                if title in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[title] = (user, at)
                self.arrived.set()
            else:
                await self.control.put(parts)

    def _tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    async def connect(self, prefix: str, start: int, end: int, concurrency: int) -> list[int]:
        """Connect users prefix<start>..prefix<end-1>; return the indices that failed."""
        count = end - start
        self._tell(f"connect {prefix} {start} {end} {concurrency}")
        began = time.monotonic()
        deadline = began + CONNECT_SECONDS_PER_1000 * max(1.0, count / 1000)
        failed: list[int] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"connecting {count} sockets took over {deadline - began:.0f}s")
            try:
                parts = await asyncio.wait_for(self.control.get(), left)
            except TimeoutError:
                continue
            kind = parts[0]
            if kind == "EOF":
                raise RuntimeError("the socket worker exited")
            if kind == "F":
                failed.append(int(parts[1]))
                if len(failed) <= 5:
                    progress(f"socket {prefix}{parts[1]} failed to connect: {' '.join(parts[2:])}")
            elif kind == "P":
                elapsed = time.monotonic() - began
                progress(
                    f"sockets {start + int(parts[1]) + int(parts[2])}/{end} "
                    f"({int(parts[2])} failed) after {elapsed:.1f}s"
                )
            elif kind == "C":
                elapsed = time.monotonic() - began
                progress(
                    f"connected {parts[1]} of {count} sockets in {elapsed:.1f}s "
                    f"({int(parts[1]) / elapsed:.0f}/s), {parts[2]} failed"
                )
                return failed

    async def quit(self) -> None:
        if self.proc.returncode is None:
            try:
                self._tell("quit")
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 40)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


# ---------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Dist:
    """A latency distribution in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @staticmethod
    def of(values_ms: Sequence[float]) -> "Dist":
        s = sorted(values_ms)
        mean = sum(s) / len(s) if s else float("nan")
        return Dist(
            len(s),
            percentile(s, 50),
            percentile(s, 90),
            percentile(s, 99),
            s[-1] if s else float("nan"),
            mean,
        )


@dataclass(frozen=True)
class Memory:
    sockets: int
    server_rss_mb: float
    per_socket_kb: float
    clients_rss_mb: float


@dataclass(frozen=True)
class Idle:
    sockets: int
    cpu: CpuUse


@dataclass(frozen=True)
class Connects:
    """A batch of handshakes, `concurrency` at a time, and the CPU they cost per socket."""

    count: int
    failed: int
    concurrency: int
    cpu: CpuUse

    @property
    def per_second(self) -> float:
        return self.count / self.cpu.seconds if self.cpu.seconds > 0 else 0.0

    def ms_each(self, used: float | None) -> str:
        return "n/a" if used is None or not self.count else f"{1000 * used / self.count:.2f}"


@dataclass(frozen=True)
class Sends:
    sockets: int
    planned: int
    sent: int
    rate: float
    achieved_rate: float
    http: Dist
    event: Dist
    after_202: Dist
    delivered: int
    lost: int
    misrouted: int
    duplicated: int
    failed_posts: int
    max_in_flight: int
    answered_rate: float  # 202s per second, first POST to last answer
    cpu: CpuUse

    @property
    def saturated(self) -> bool:
        """The server did not keep up with the offered rate: latencies include queueing."""
        return self.max_in_flight >= MAX_IN_FLIGHT or self.answered_rate < 0.9 * self.rate

    @property
    def ratio_p50(self) -> float:
        return self.event.p50 / self.http.p50

    @property
    def ratio_p99(self) -> float:
        return self.event.p99 / self.http.p99


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    memory_gb: float
    system: str
    python: str
    postgres: str
    postgres_settings: dict[str, str]
    packages: dict[str, str]
    herald: str
    load_at_start: str


@dataclass
class Result:
    started: str
    command: str
    machine: Machine
    base_rss_mb: float = 0.0
    memory: list[Memory] = field(default_factory=list)
    idle: list[Idle] = field(default_factory=list)
    connects: list[Connects] = field(default_factory=list)
    sends: Sends | None = None


def herald_revision() -> str:
    """The commit, and whether app/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+changes in app/" if dirty else "")


def machine_facts(postgres: str, settings: dict[str, str]) -> Machine:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    packages = {}
    for name in ("python-socketio", "python-engineio", "uvicorn", "websockets", "aiohttp"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "-"
    return Machine(
        nproc=os.cpu_count() or 0,
        cpu_model=model,
        memory_gb=mem_kb / 1024 / 1024,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        postgres=postgres,
        postgres_settings=settings,
        packages=packages,
        herald=herald_revision(),
        load_at_start=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
    )


# ---------------------------------------------------------------- phases


async def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """RSS after `seconds` of quiet, the lowest of a few reads."""
    await asyncio.sleep(seconds)
    reads = []
    for _ in range(3):
        reads.append(rss_bytes(pid))
        await asyncio.sleep(0.2)
    return min(reads)


async def idle_window(procs: Procs, sockets: int, seconds: float, not_before: float) -> Idle:
    """CPU over `seconds` of idle sockets, starting no earlier than `not_before` (monotonic).

    Sockets connected in a burst send their heartbeats in bursts too (engine.io pings every
    25 s, uvicorn's WebSocket keepalive every 20 s), none in the first 20 s: a window right after
    connecting would see none of them."""
    wait = not_before - time.monotonic()
    if wait > 0:
        progress(f"idle: waiting {wait:.0f}s for the newest sockets' first heartbeats")
        await asyncio.sleep(wait)
    progress(f"idle: reading CPU for {seconds:.0f}s with {sockets} sockets connected")
    before = procs.snapshot()
    await asyncio.sleep(seconds)
    return Idle(sockets, CpuUse.between(before, procs.snapshot()))


async def send_one(
    http: aiohttp.ClientSession, base: str, creds: AppCreds, title: str, user: str
) -> tuple[int, int, int]:
    body = {"notification": {"title": title}, "sendTo": {"recipients": [user]}}
    t0 = time.monotonic_ns()
    async with http.post(f"{base}/v3/notifications", json=body, headers=creds.backend()) as r:
        await r.read()
        t1 = time.monotonic_ns()
        return r.status, t0, t1


async def wait_for_arrivals(worker: Worker, titles: Sequence[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not all(t in worker.arrivals for t in titles):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        worker.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.arrived.wait(), min(left, 0.5))


async def warm_up(
    http: aiohttp.ClientSession, base: str, creds: AppCreds, worker: Worker, users: int, n: int
) -> None:
    """Untimed sends to the warm-up users, so first-use costs stay out of the numbers."""
    titles = []
    for i in range(n):
        title = f"w{i}"
        status, _, _ = await send_one(http, base, creds, title, f"w{i % users}")
        if status != 202:
            raise RuntimeError(f"warm-up send answered {status}")
        titles.append(title)
    await wait_for_arrivals(worker, titles, 10)
    missing = [t for t in titles if t not in worker.arrivals]
    if missing:
        raise RuntimeError(f"warm-up events never arrived: {missing[:5]}")


async def send_phase(
    opts: Options,
    http: aiohttp.ClientSession,
    base: str,
    creds: AppCreds,
    worker: Worker,
    targets: Sequence[int],
    procs: Procs,
) -> Sends:
    rng = random.Random(opts.seed)
    plan = [(f"s{i}", f"u{rng.choice(targets)}") for i in range(opts.sends)]
    posts: dict[str, tuple[str, int, int, int]] = {}  # title -> (user, status, t0, t1)
    in_flight = 0
    max_in_flight = 0
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def post(title: str, user: str) -> None:
        nonlocal in_flight, max_in_flight
        async with gate:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            try:
                status, t0, t1 = await send_one(http, base, creds, title, user)
            except aiohttp.ClientError:
                status, t0, t1 = 0, 0, 0
            finally:
                in_flight -= 1
            posts[title] = (user, status, t0, t1)

    span = opts.sends / opts.rate
    progress(f"sending {opts.sends} notifications at {opts.rate:g}/s (~{span:.0f}s)")
    deadline = time.monotonic() + span * 1.5 + 30
    before = procs.snapshot()
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    next_report = started + 10
    for i, (title, user) in enumerate(plan):
        due = started + i / opts.rate
        now = time.monotonic()
        if now > deadline:
            progress("send phase hit its time cap; stopping early")
            break
        if due > now:
            await asyncio.sleep(due - now)
        tasks.append(asyncio.create_task(post(title, user)))
        if time.monotonic() >= next_report:
            heard = sum(1 for t, _ in plan[: i + 1] if t in worker.arrivals)
            progress(f"sent {i + 1}/{opts.sends}, {heard} of their events received")
            next_report += 10
    send_span = time.monotonic() - started
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
    sent_titles = [t for t, _ in plan[: len(tasks)]]
    await wait_for_arrivals(worker, sent_titles, ARRIVAL_GRACE_SECONDS)
    cpu = CpuUse.between(before, procs.snapshot())

    http_ms: list[float] = []
    event_ms: list[float] = []
    after_ms: list[float] = []
    lost = misrouted = failed = 0
    first_t0, last_t1 = math.inf, -math.inf
    for title in sent_titles:
        if title not in posts or posts[title][1] != 202:
            failed += 1
            continue
        user, _, t0, t1 = posts[title]
        first_t0, last_t1 = min(first_t0, t0), max(last_t1, t1)
        http_ms.append((t1 - t0) / 1e6)
        got = worker.arrivals.get(title)
        if got is None:
            lost += 1
            continue
        if got[0] != user:
            misrouted += 1
        event_ms.append((got[1] - t0) / 1e6)
        after_ms.append((got[1] - t1) / 1e6)
    return Sends(
        sockets=len(targets),
        planned=opts.sends,
        sent=len(sent_titles),
        rate=opts.rate,
        achieved_rate=len(sent_titles) / send_span if send_span > 0 else 0.0,
        http=Dist.of(http_ms),
        event=Dist.of(event_ms),
        after_202=Dist.of(after_ms),
        delivered=len(event_ms),
        lost=lost,
        misrouted=misrouted,
        duplicated=worker.duplicates,
        failed_posts=failed,
        max_in_flight=max_in_flight,
        answered_rate=len(http_ms) / ((last_t1 - first_t0) / 1e9) if http_ms else 0.0,
        cpu=cpu,
    )


async def measure(opts: Options, server_url: str) -> Result:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    progress(f"fresh database {opts.database_name}")
    db_url = plain(await recreate(server_url, opts.database_name))
    version, postmaster, settings = await postgres_facts(db_url)
    result = Result(started, opts.command, machine_facts(version, settings))
    server = Server(db_url, opts.data_dir)
    worker: Worker | None = None
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            progress(f"starting herald on {server.base} (log: {server.log})")
            await server.ready(http)
            creds = await create_app(http, server)
            worker = await Worker.start(server.base, creds.api_key)
            procs = Procs(server.proc.pid, worker.pid, postmaster)

            # Warm-up: a few sockets and sends, so lazy imports and first-use caches are paid.
            warm_users = min(10, opts.sockets)
            await worker.connect("w", 0, warm_users, opts.connect_concurrency)
            await warm_up(http, server.base, creds, worker, warm_users, opts.warmup)

            base_rss = await settle_rss(server.proc.pid)
            base_clients = rss_bytes(worker.pid)
            result.base_rss_mb = base_rss / MB
            progress(f"server RSS before sockets: {base_rss / MB:.1f} MB")

            failed = await connect_batch(result, procs, worker, opts, 0, opts.sockets)
            connected = opts.sockets - len(failed)
            if connected == 0:
                raise RuntimeError("no socket connected")
            heartbeats = time.monotonic() + opts.idle_after
            result.memory.append(await memory_at(procs, connected, base_rss, base_clients))

            targets = sorted(set(range(opts.sockets)) - set(failed))
            result.sends = await send_phase(opts, http, server.base, creds, worker, targets, procs)
            result.idle.append(await idle_window(procs, connected, opts.idle_seconds, heartbeats))

            if opts.memory_sockets:
                more = await connect_batch(
                    result, procs, worker, opts, opts.sockets, opts.memory_sockets
                )
                total = connected + (opts.memory_sockets - opts.sockets) - len(more)
                heartbeats = time.monotonic() + opts.idle_after
                result.memory.append(await memory_at(procs, total, base_rss, base_clients))
                result.idle.append(await idle_window(procs, total, opts.idle_seconds, heartbeats))
    finally:
        if worker is not None:
            progress("disconnecting sockets")
            await worker.quit()
        server.stop()
        if not opts.keep:
            await drop(server_url, opts.database_name)
    return result


async def connect_batch(
    result: Result, procs: Procs, worker: Worker, opts: Options, start: int, end: int
) -> list[int]:
    before = procs.snapshot()
    failed = await worker.connect("u", start, end, opts.connect_concurrency)
    cpu = CpuUse.between(before, procs.snapshot())
    result.connects.append(
        Connects(end - start - len(failed), len(failed), opts.connect_concurrency, cpu)
    )
    return failed


async def memory_at(procs: Procs, sockets: int, base_rss: int, base_clients: int) -> Memory:
    rss = await settle_rss(procs.server)
    clients = rss_bytes(procs.worker)
    per = (rss - base_rss) / sockets / 1024
    progress(f"server RSS with {sockets} sockets: {rss / MB:.1f} MB ({per:.1f} KB/socket)")
    return Memory(sockets, rss / MB, per, (clients - base_clients) / MB)


# ---------------------------------------------------------------- output


def _ms(v: float) -> str:
    return f"{v:8.2f}" if not math.isnan(v) else "     n/a"


def table(r: Result) -> str:
    m = r.machine
    lines = [
        f"Herald realtime benchmark, {r.started}",
        f"machine: {m.nproc} CPUs ({m.cpu_model}), {m.memory_gb:.1f} GB RAM, {m.system}",
        f"software: Herald {m.herald}; Python {m.python}; PostgreSQL {m.postgres}; "
        + ", ".join(f"{k} {v}" for k, v in m.packages.items()),
        f"load average at start: {m.load_at_start}",
        f"command: {r.command}",
        "",
    ]
    s = r.sends
    if s is not None:
        lines += [
            f"send -> NEW_NOTIFICATION with {s.sockets:,} connected sockets: "
            f"{s.sent:,} sends at {s.rate:g}/s (sent {s.achieved_rate:.1f}/s, "
            f"answered {s.answered_rate:.1f}/s)",
            f"  {'milliseconds':<28}{'p50':>8}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}",
        ]
        for name, d in (
            ("POST -> 202 (baseline)", s.http),
            ("POST -> event on socket", s.event),
            ("202 -> event", s.after_202),
        ):
            lines.append(
                f"  {name:<28}{_ms(d.p50)} {_ms(d.p90)} {_ms(d.p99)} {_ms(d.max)} {_ms(d.mean)}"
            )
        lines += [
            f"  ratio event/202: p50 {s.ratio_p50:.2f}x, p99 {s.ratio_p99:.2f}x",
            f"  delivered {s.delivered}/{s.sent}; lost {s.lost}, misrouted {s.misrouted}, "
            f"duplicated {s.duplicated}, failed POSTs {s.failed_posts}; "
            f"max {s.max_in_flight} POSTs in flight",
            f"  CPU over {s.cpu.seconds:.1f}s (share of one core): server {s.cpu.pct(s.cpu.server)}"
            f", postgres {s.cpu.pct(s.cpu.postgres)}, socket clients {s.cpu.pct(s.cpu.clients)}"
            f", sender {s.cpu.pct(s.cpu.sender)}; whole machine busy "
            f"{100 * s.cpu.machine_busy_share:.0f}% of {m.nproc} cores, other programs "
            f"{s.cpu.others(m.nproc):.2f} cores",
        ]
        if s.saturated:
            lines.append(f"  WARNING: {SATURATED}")
        lines.append("")
    lines.append(f"server resident memory (VmRSS): {r.base_rss_mb:.1f} MB before the sockets")
    for mem in r.memory:
        lines.append(
            f"  {mem.sockets:>6,} idle sockets: {mem.server_rss_mb:7.1f} MB, "
            f"{mem.per_socket_kb:6.1f} KB per socket (clients' process: "
            f"+{mem.clients_rss_mb:.1f} MB)"
        )
    lines.append("")
    for idle in r.idle:
        c = idle.cpu
        lines.append(
            f"idle CPU with {idle.sockets:,} sockets over {c.seconds:.1f}s (share of one core): "
            f"server {c.pct(c.server)}, postgres {c.pct(c.postgres)}, "
            f"socket clients {c.pct(c.clients)}; whole machine busy "
            f"{100 * c.machine_busy_share:.0f}% of {m.nproc} cores, other programs "
            f"{c.others(m.nproc):.2f} cores"
        )
    lines.append("")
    for batch in r.connects:
        use = batch.cpu
        lines.append(
            f"connecting {batch.count:,} sockets ({batch.concurrency} at a time): "
            f"{use.seconds:.1f}s, {batch.per_second:.0f}/s, {batch.failed} failed; CPU ms per "
            f"socket: server {batch.ms_each(use.server)}, postgres {batch.ms_each(use.postgres)}"
            f", socket clients {batch.ms_each(use.clients)}; whole machine busy "
            f"{100 * use.machine_busy_share:.0f}% of {m.nproc} cores"
        )
    return "\n".join(lines)


def markdown(r: Result) -> str:
    m = r.machine
    sockets = r.memory[0].sockets if r.memory else 0
    out = [
        f"## Realtime: {r.started}, {sockets:,} sockets",
        "",
        f"- Machine: {m.nproc} CPUs ({m.cpu_model}), {m.memory_gb:.1f} GB RAM, {m.system}; "
        f"load average at start {m.load_at_start}",
        f"- Software: Herald {m.herald}; Python {m.python}; PostgreSQL {m.postgres} ("
        + ", ".join(f"{k}={v}" for k, v in m.postgres_settings.items())
        + "); "
        + ", ".join(f"{k} {v}" for k, v in m.packages.items()),
        f"- Command: `{r.command}`",
        "- One `herald serve` process; the socket clients run in one separate process and the "
        "sender in another, all on the same cores as the server and PostgreSQL.",
        "",
    ]
    s = r.sends
    if s is not None:
        out += [
            f"Send -> NEW_NOTIFICATION with {s.sockets:,} connected sockets (one user each), "
            f"{s.sent:,} 1-recipient sends at {s.rate:g}/s (sent {s.achieved_rate:.1f}/s, "
            f"answered {s.answered_rate:.1f}/s):",
            "",
            "| ms | p50 | p90 | p99 | max | mean |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, d in (
            ("POST -> 202 (baseline)", s.http),
            ("POST -> event on the socket", s.event),
            ("202 -> event", s.after_202),
        ):
            out.append(
                f"| {name} | {d.p50:.2f} | {d.p90:.2f} | {d.p99:.2f} | {d.max:.2f} | {d.mean:.2f} |"
            )
        out += [
            "",
            f"Ratio event/202: p50 {s.ratio_p50:.2f}x, p99 {s.ratio_p99:.2f}x. Delivered "
            f"{s.delivered}/{s.sent}; lost {s.lost}, misrouted {s.misrouted}, duplicated "
            f"{s.duplicated}, failed POSTs {s.failed_posts}. CPU during the sends (share of one "
            f"core): server {s.cpu.pct(s.cpu.server)}, PostgreSQL {s.cpu.pct(s.cpu.postgres)}, "
            f"socket clients {s.cpu.pct(s.cpu.clients)}, sender {s.cpu.pct(s.cpu.sender)}; "
            f"machine busy {100 * s.cpu.machine_busy_share:.0f}% of {m.nproc} cores, of which "
            f"other programs {s.cpu.others(m.nproc):.2f} cores."
            + (f" **{SATURATED}**" if s.saturated else ""),
            "",
        ]
    out += [
        "| idle sockets | server RSS MB | KB per socket | server CPU idle, of one core "
        "| PostgreSQL CPU idle | other programs |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| 0 | {r.base_rss_mb:.1f} | | | | |",
    ]
    for mem, idle in zip(r.memory, r.idle, strict=False):
        c = idle.cpu
        out.append(
            f"| {mem.sockets:,} | {mem.server_rss_mb:.1f} | {mem.per_socket_kb:.1f} | "
            f"{c.pct(c.server)} over {c.seconds:.0f}s | {c.pct(c.postgres)} | "
            f"{c.others(m.nproc):.2f} cores |"
        )
    out.append("")
    for batch in r.connects:
        use = batch.cpu
        out.append(
            f"- Connecting {batch.count:,} sockets ({batch.concurrency} handshakes at a time) "
            f"took {use.seconds:.1f}s ({batch.per_second:.0f}/s, {batch.failed} failed); CPU "
            f"ms per socket: server {batch.ms_each(use.server)}, PostgreSQL "
            f"{batch.ms_each(use.postgres)}, clients {batch.ms_each(use.clients)}."
        )
    out.append("")
    return "\n".join(out) + "\n"


def append_results(path: Path, section: str) -> None:
    """Append a section; never rewrites what others wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        if f.tell() == 0:
            f.write("# Benchmarks\n")
        f.write("\n" + section)


def to_json(r: Result) -> dict[str, Any]:
    data = asdict(r)
    if r.sends is not None:
        data["sends"]["ratio_p50"] = r.sends.ratio_p50
        data["sends"]["ratio_p99"] = r.sends.ratio_p99
    return data


# ---------------------------------------------------------------- entry


def run(opts: Options) -> Result:
    with postgres_server(opts.database_url, opts.data_dir) as server_url:
        return asyncio.run(measure(opts, server_url))


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        asyncio.run(worker_main(args[1], args[2]))
        return
    opts = options(args)
    result = run(opts)
    print(table(result), flush=True)
    if opts.results is not None:
        append_results(opts.results, markdown(result))
        progress(f"appended a section to {opts.results}")
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps(to_json(result), indent=2))


if __name__ == "__main__":
    main()
