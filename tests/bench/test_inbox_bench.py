"""bench/inbox.py end to end at --quick sizes: it runs, stops by itself, and measures."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = pytest.mark.live

PHASES = (
    "GET /health c=1",
    "GET /health",
    "inbox SQL (asyncpg) c=1",
    "GET /v3/notifications c=1",
    "inbox SQL (asyncpg) after sends",
    "inbox SQL (asyncpg)",
    "GET /v3/notifications after sends",
    "GET /v3/notifications",
    "send SQL (asyncpg)",
    "POST /v3/notifications",
)
# name, done, rate/s, p50 ms, p99 ms, then CPU columns
ROW = re.compile(
    r"^(?P<name>" + "|".join(re.escape(p) for p in PHASES) + r")\s+"
    r"(?P<done>\d+)\s+(?P<rate>[\d.]+)\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)\s",
    re.MULTILINE,
)
RATIO = re.compile(r"^  (?P<label>.+?÷.+?)\s+(?P<value>[\d.]+)$", re.MULTILINE)


def test_inbox_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    run = run_quick(
        "bench.inbox",
        server_url,
        "herald_bench_inbox",
        "--results",
        str(results),
    )
    assert "seed: 10,000 / 10,000 notifications" in run.stderr  # progress while seeding

    rows = {m["name"]: m for m in ROW.finditer(run.stdout)}
    assert set(rows) == set(PHASES), run.stdout
    for name, m in rows.items():
        assert int(m["done"]) == (30 if name.endswith("c=1") else 100), name
        rate, p50, p99 = float(m["rate"]), float(m["p50"]), float(m["p99"])
        assert rate > 0, name
        assert 0 < p50 <= p99, name
    ratios = {m["label"].strip(): float(m["value"]) for m in RATIO.finditer(run.stdout)}
    assert len(ratios) >= 11, run.stdout
    assert all(v > 0 for v in ratios.values()), ratios
    # The plans were read from EXPLAIN on the seeded data, and name the indexes used: the
    # page is one range read of the user's index plus a lookup of their counters.
    assert "Index Scan (ix_notifications_inbox)" in run.stdout
    assert "inbox_counters)" in run.stdout

    section = results.read_text()
    assert "10,000 rows, 1,000 for the measured user" in section
    assert "| `POST /v3/notifications` |" in section
    assert "EXPLAIN (ANALYZE, BUFFERS)" in section
