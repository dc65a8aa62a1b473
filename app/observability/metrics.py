"""The Prometheus instruments of one app instance, in a registry of its own.

A registry per app (not prometheus-client's global one) keeps apps built side by side, as the
tests build them, from sharing or re-registering series."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from sqlalchemy.pool import Pool

from app.read_pool import ReadPool

# Requests that matched no route share one label, so stray paths cannot grow the series.
UNMATCHED = "unmatched"
SEND = ("POST", "/v3/notifications", 202)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Inbox pages take a few milliseconds: finer steps at the low end than the library default.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class QueueRow:
    entrypoint: str
    state: str  # waiting | scheduled | running | failed
    jobs: int
    oldest_seconds: float


class Metrics:
    def __init__(self) -> None:
        # `*_created` twins of every counter double the exposition for a value Prometheus
        # does not use (the switch is process-wide; Herald has no other metrics).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds: per replica.
        ProcessCollector(registry=r)
        self.requests = Counter(
            "herald_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "herald_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.sends = Counter(
            "herald_sends_accepted",
            "Sends answered 202 by POST /v3/notifications.",
            registry=r,
        )
        self.queue_jobs = Gauge(
            "herald_queue_jobs",
            "Jobs in the queue table by entrypoint and state: waiting (due, not yet picked), "
            "scheduled (due later), running, failed (held after the last attempt).",
            ["entrypoint", "state"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "herald_queue_oldest_waiting_seconds",
            "How long the oldest waiting job has been due (0 when none waits).",
            registry=r,
        )
        self.queue_up = Gauge(
            "herald_queue_stats_up",
            "1 when this scrape read the queue table, 0 when that failed or timed out.",
            registry=r,
        )
        self.sockets = Gauge(
            "herald_realtime_sockets",
            "Socket.io clients connected to this process.",
            registry=r,
        )
        self.pool_size = Gauge(
            "herald_db_pool_size", "Connections the database pool keeps open.", registry=r
        )
        self.pool_checked_out = Gauge(
            "herald_db_pool_checked_out",
            "Pool connections in use right now (at most size plus overflow).",
            registry=r,
        )
        self.pool_overflow = Gauge(
            "herald_db_pool_overflow",
            "Connections open beyond the pool size right now.",
            registry=r,
        )
        self.read_pool_open = Gauge(
            "herald_read_pool_open",
            "Connections the inbox read pool has open (it opens them on demand, up to its size).",
            registry=r,
        )
        self.read_pool_in_use = Gauge(
            "herald_read_pool_in_use", "Read pool connections in use right now.", registry=r
        )
        self.read_pool_waiting = Gauge(
            "herald_read_pool_waiting",
            "Inbox reads waiting for a read pool connection right now.",
            registry=r,
        )
        self.send_groups = Counter(
            "herald_send_groups",
            "Groups of plain sends committed, each by one transaction.",
            registry=r,
        )
        self.grouped_sends = Counter(
            "herald_send_group_sends",
            "Plain sends those groups wrote: over herald_send_groups_total, the mean group size.",
            registry=r,
        )
        # A (entrypoint, state) once seen reads 0 when empty, rather than vanishing.
        self._queue_seen: set[tuple[str, str]] = set()
        # Label lookups cost a lock and a tuple each; children are cached per label set.
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Record one answered request."""
        if method not in _METHODS:
            method = "OTHER"
        route = route or UNMATCHED
        key = (method, route, status)
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = self.requests.labels(method, route, str(status))
        counted.inc()
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[(method, route)] = self.latency.labels(method, route)
        timed.observe(seconds)
        if key == SEND:
            self.sends.inc()

    def set_queue(self, rows: Sequence[QueueRow] | None) -> None:
        """Replace the queue gauges with this scrape's reading (None: it could not be read)."""
        if rows is None:
            # Unknown, not zero: no value rather than a stale one.
            self.queue_up.set(0)
            self.queue_jobs.clear()
            self.queue_oldest.set(math.nan)
            return
        self.queue_up.set(1)
        oldest = 0.0
        now = {(row.entrypoint, row.state): row.jobs for row in rows}
        for key in self._queue_seen - now.keys():
            self.queue_jobs.labels(*key).set(0)
        for key, jobs in now.items():
            self.queue_jobs.labels(*key).set(jobs)
        self._queue_seen |= now.keys()
        for row in rows:
            if row.state == "waiting":
                oldest = max(oldest, row.oldest_seconds)
        self.queue_oldest.set(oldest)

    def set_pool(self, pool: Pool) -> None:
        size = getattr(pool, "size", None)
        checked_out = getattr(pool, "checkedout", None)
        overflow = getattr(pool, "overflow", None)
        if callable(size) and callable(checked_out) and callable(overflow):
            self.pool_size.set(size())
            self.pool_checked_out.set(checked_out())
            # QueuePool counts overflow from -size up: only what is past the size is overflow.
            self.pool_overflow.set(max(0, overflow()))

    def set_read_pool(self, pool: ReadPool | None) -> None:
        if pool is not None:
            self.read_pool_open.set(pool.opened)
            self.read_pool_in_use.set(pool.in_use)
            self.read_pool_waiting.set(pool.waiting)

    def grouped(self, sends: int) -> None:
        """Count one committed group of `sends` plain sends."""
        self.send_groups.inc()
        self.grouped_sends.inc(sends)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for; (body, content type)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
