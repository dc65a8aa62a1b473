"""Closed-loop load: N operations over C concurrent workers, with latency and CPU accounting."""

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

Operation = Callable[[int], Awaitable[None]]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Cpu:
    """CPU seconds: the load generator, the Herald server, PostgreSQL, and the whole machine."""

    client: float = 0.0
    server: float | None = 0.0
    postgres: float | None = 0.0
    machine: float | None = 0.0
    wall: float = 0.0  # a clock reading; after subtraction, the wall time these were spent in

    def __add__(self, other: "Cpu") -> "Cpu":
        return Cpu(
            self.client + other.client,
            _plus(self.server, other.server),
            _plus(self.postgres, other.postgres),
            _plus(self.machine, other.machine),
            self.wall + other.wall,
        )

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(
            self.client - other.client,
            _minus(self.server, other.server),
            _minus(self.postgres, other.postgres),
            _minus(self.machine, other.machine),
            self.wall - other.wall,
        )

    @property
    def others(self) -> float | None:
        """CPU used by everything else on the machine (other jobs compete for the cores)."""
        if self.machine is None or self.server is None or self.postgres is None:
            return None
        return max(0.0, self.machine - self.client - self.server - self.postgres)


@dataclass(frozen=True)
class Part:
    """What one load-generating process measured: requests done in [started, ended]."""

    done: int
    started: float  # time.time()
    ended: float
    latencies: list[float]
    client_cpu: float


@dataclass
class Sample:
    name: str
    done: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, sorted
    cpu: Cpu = field(default_factory=Cpu)
    cut_short: bool = False

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """The q-th percentile (nearest rank) in milliseconds."""
        if not self.latencies:
            return 0.0
        rank = max(1, min(len(self.latencies), math.ceil(q / 100 * len(self.latencies))))
        return self.latencies[rank - 1] * 1000

    def add(self, parts: list[Part], cpu: Cpu, *, wanted: int) -> None:
        """Fold one round in: its wall time runs from the first start to the last end."""
        done = sum(p.done for p in parts)
        self.done += done
        self.seconds += max(p.ended for p in parts) - min(p.started for p in parts)
        self.latencies = sorted(self.latencies + [x for p in parts for x in p.latencies])
        self.cpu = self.cpu + cpu
        self.cut_short = self.cut_short or done < wanted


@dataclass
class Processes:
    """Where to read CPU time from: the server process and PostgreSQL's postmaster."""

    server_pid: int | None = None
    postmaster_pid: int | None = None

    def cpu(self) -> Cpu:
        times = os.times()
        server = _proc_cpu([self.server_pid]) if self.server_pid else None
        postgres = None
        if self.postmaster_pid:
            # The postmaster's own counters include the backends it has already reaped.
            reaped = _proc_cpu([self.postmaster_pid], reaped=True)
            live = _proc_cpu(_children(self.postmaster_pid))
            postgres = reaped + live if reaped is not None and live is not None else None
        return Cpu(
            times.user + times.system, server, postgres, _machine_busy(), time.perf_counter()
        )


async def run_local(operation: Operation, *, count: int, concurrency: int, deadline: float) -> Part:
    """Run `operation(i)` for i in range(count) on `concurrency` workers until the deadline."""
    latencies: list[float] = []
    cpu, started = os.times(), time.time()
    done = await closed_loop(operation, count, concurrency, deadline, latencies)
    after = os.times()
    client = after.user + after.system - cpu.user - cpu.system
    return Part(done, started, time.time(), latencies, client)


async def closed_loop(
    operation: Operation, count: int, concurrency: int, deadline: float, latencies: list[float]
) -> int:
    """Each worker starts its next operation when its last one ends; returns how many ran."""
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return issued


def _plus(a: float | None, b: float | None) -> float | None:
    return a + b if a is not None and b is not None else None


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _machine_busy() -> float | None:
    """Busy CPU seconds of the whole machine, all cores (from /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _proc_cpu(pids: list[int], *, reaped: bool = False) -> float | None:
    """Summed CPU seconds of `pids`; None when none of them can be read."""
    total, seen = 0, not pids
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        seen = True
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if reaped:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / _TICK if seen else None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (field 3 onwards)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found
