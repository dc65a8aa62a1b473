"""`herald purge`: the periodic purge, run at once, with progress on stderr."""

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import replace

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.retention import service
from app.retention.service import Policy

DESCRIPTION = """\
Delete now what the retention settings no longer keep, as the periodic purge does:
inbox rows older than HERALD_RETENTION_DAYS; finished send requests (with their payloads
and inbox rows) and finished queue log rows older than HERALD_REQUEST_RETENTION_DAYS
(default: HERALD_RETENTION_DAYS); idempotency keys older than 24 hours. 0 days keeps
forever. Deletes a bounded batch per transaction, so Herald keeps serving meanwhile.
Progress goes to stderr; the rows deleted per table, as JSON, to stdout. Ctrl-C stops
after the current batch."""


def batch_size(value: str) -> int:
    """argparse type of --batch-size."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of rows, at least 1: {value!r}")
    return number


def pause(value: str) -> float:
    """argparse type of --pause."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 100: {value!r}")
    return number


def run(url: str, settings: Settings, *, batch: int, pause: float = 0.0) -> None:
    """Purge the database at `url` (migrated) as `settings` say; print the counts as JSON."""
    policy = replace(Policy.of(settings), batch=batch, pause=pause)
    deleted = asyncio.run(_purge(url, policy))
    print(json.dumps(deleted))


async def _purge(url: str, policy: Policy) -> dict[str, int]:
    _say(
        f"purge: inbox rows {_kept(policy.inbox_days)}, finished requests "
        f"{_kept(policy.request_days)}; {policy.batch:,} rows per batch"
        + (f", pausing {policy.pause:g} times each batch's time after it" if policy.pause else "")
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = make_engine(url, pool_size=2)
    started = time.monotonic()
    try:
        deleted = await service.purge(
            make_sessionmaker(engine),
            policy,
            wait=True,
            progress=_Progress(),
            on_wait=lambda: _say("purge: waiting for the purge that is running to finish"),
            stopping=stop.is_set,
        )
    finally:
        await engine.dispose()
    assert deleted is not None  # with wait=True it runs
    total = sum(deleted.values())
    ended = "stopped; run it again to continue" if stop.is_set() else "done"
    _say(f"purge: {ended} in {time.monotonic() - started:.1f} s, {total:,} rows deleted")
    return deleted


class _Progress:
    """One line per table at most every second while it runs, and one when it is done."""

    def __init__(self) -> None:
        self.at = 0.0
        self.shown: dict[str, int] = {}

    def __call__(self, table: str, rows: int, finished: bool) -> None:
        now = time.monotonic()
        moved = rows != self.shown.get(table, 0)
        if finished or (moved and now - self.at >= 1.0):
            self.at, self.shown[table] = now, rows
            _say(f"purge: {table}: {rows:,} deleted" + (" (done)" if finished else ""))


def _kept(days: int) -> str:
    return f"kept {days} days" if days else "kept forever"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
