"""Sends under a fault: run them, keep every answer, and check what the database holds after.

The figures each fault test prints (202s, their rows found, duplicates, 503s, recovery) come
from `Tally`."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests import db


@dataclass
class Answer:
    index: int
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all (the connection failed)
    body: Any = None
    retry_after: str | None = None
    error: str | None = None

    @property
    def request_id(self) -> str | None:
        if self.status == 202 and isinstance(self.body, dict):
            rid = self.body.get("requestId")
            return rid if isinstance(rid, str) else None
        return None


@dataclass
class Load:
    """`total` sends over `concurrency` workers; `answered` counts answers as they come.

    Send `i` posts `body(i)` with `headers(i)`, so a retry of `i` is the same request."""

    client: httpx.AsyncClient
    headers: Callable[[int], dict[str, str]]
    body: Callable[[int], Any]
    total: int
    concurrency: int
    answers: list[Answer] = field(default_factory=list)
    answered: int = 0
    stopped: bool = False  # set by `stop`: no further send begins
    _waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    async def run(self) -> list[Answer]:
        indexes = iter(range(self.total))

        async def worker() -> None:
            for i in indexes:
                if self.stopped:
                    return
                self.answers.append(await self.send(i))
                self.answered += 1
                for count, event in self._waiters:
                    if self.answered >= count:
                        event.set()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return sorted(self.answers, key=lambda a: a.index)

    async def send(self, i: int) -> Answer:
        started = time.monotonic()
        try:
            response = await self.client.post(
                "/v3/notifications", json=self.body(i), headers=self.headers(i)
            )
        except httpx.TransportError as exc:
            return Answer(i, started, time.monotonic(), None, error=repr(exc))
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return Answer(
            i,
            started,
            time.monotonic(),
            response.status_code,
            body,
            response.headers.get("Retry-After"),
        )

    def stop(self) -> None:
        self.stopped = True

    def after(self, count: int) -> Awaitable[bool]:
        """Wait until `count` sends have been answered."""
        event = asyncio.Event()
        self._waiters.append((count, event))
        if self.answered >= count:
            event.set()
        return event.wait()


def refusal_problems(answers: list[Answer]) -> list[Answer]:
    """Answers other than a 202 that are not a 503 in the error shape with Retry-After."""
    bad = []
    for a in answers:
        if a.status == 202:
            continue
        shaped = (
            a.status == 503
            and isinstance(a.body, dict)
            and a.body.get("status") == "error"
            and a.body.get("statusCode") == 503
            and isinstance(a.body.get("message"), str)
            and a.retry_after is not None
            and a.retry_after.isdigit()
        )
        if not shaped:
            bad.append(a)
    return bad


async def rows_per_request(url: str, app_id: int) -> dict[str, int]:
    """request id -> inbox rows, for every send of the app the database holds."""
    conn = await asyncpg.connect(db.plain(url))
    try:
        found = await conn.fetch(
            "SELECT r.id::text, count(n.id) FROM notification_requests r "
            "LEFT JOIN notifications n ON n.request_id = r.id WHERE r.app_id = $1 GROUP BY r.id",
            app_id,
        )
        return {r[0]: int(r[1]) for r in found}
    finally:
        await conn.close()


@dataclass(frozen=True)
class Tally:
    accepted: int  # 202s
    found: int  # 202s whose rows are all there
    duplicates: int  # sends written more than once, or rows beyond a send's audience
    refused: int  # 503s
    unanswered: int  # no HTTP answer
    recovery: float | None = None

    def line(self, what: str) -> str:
        recovery = "" if self.recovery is None else f", recovered {self.recovery:.2f} s after"
        return (
            f"{what}: {self.accepted} x 202, rows found for {self.found}, "
            f"{self.duplicates} duplicates, {self.refused} x 503, "
            f"{self.unanswered} unanswered{recovery}"
        )
