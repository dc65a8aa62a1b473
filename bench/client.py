"""The HTTP load generator: one httpx.AsyncClient per process, run in this process or in several."""

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from bench.load import Part, closed_loop

Kind = Literal["health", "inbox", "send"]


@dataclass(frozen=True)
class HttpSpec:
    kind: Kind
    base: str
    headers: dict[str, str]
    count: int
    concurrency: int
    max_seconds: float
    users: int  # sends go to u1 … u<users>
    warmup: int = 0  # untimed requests first
    offset: int = 0  # so that each process and round sends distinct requests


def recipient(i: int, users: int) -> str:
    return f"u{1 + i % users}"


def send_body(n: int, identifier: str) -> dict[str, object]:
    return {"notification": {"title": f"Bench {n}"}, "sendTo": {"recipients": [identifier]}}


async def http_phase(spec: HttpSpec, *, timing: Callable[[], None] | None = None) -> Part:
    """Open the connections (and warm up), then time `spec.count` requests.

    `timing` is called when the timed part starts, so the caller can read CPU counters."""
    c = spec.concurrency
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=spec.base, timeout=30, limits=limits) as client:

        async def operation(i: int) -> None:
            n = spec.offset + i
            if spec.kind == "health":
                _ok(await client.get("/health"), 200)
            elif spec.kind == "inbox":
                _ok(await client.get("/v3/notifications", headers=spec.headers), 200)
            else:
                body = send_body(n, recipient(n, spec.users))
                response = await client.post("/v3/notifications", json=body, headers=spec.headers)
                _ok(response, 202)

        deadline = time.perf_counter() + spec.max_seconds
        # At least one request per connection, so that no connection is opened while timed.
        await closed_loop(operation, max(spec.warmup, c), c, deadline, [])
        latencies: list[float] = []
        if timing is not None:
            timing()
        cpu, started = _cpu(), time.time()
        done = await closed_loop(operation, spec.count, c, deadline, latencies)
        return Part(done, started, time.time(), latencies, _cpu() - cpu)


def http_phase_sync(spec: HttpSpec) -> Part:
    """Entry point in a client worker process."""
    return asyncio.run(http_phase(spec))


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _ok(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
