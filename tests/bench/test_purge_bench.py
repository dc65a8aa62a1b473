"""bench/purge.py end to end at --quick sizes: it seeds, purges under load, and measures."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import assert_printed_ratio, positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT purge_seconds=(?P<seconds>[\d.]+) rows_per_s=(?P<rate>\d+) "
    r"p99_before_ms=(?P<before>[\d.]+) p99_during_ms=(?P<during>[\d.]+) "
    r"p99_after_ms=(?P<after>[\d.]+) ratio=(?P<ratio>[\d.]+)$",
    re.MULTILINE,
)


def test_purge_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    run = run_quick("bench.purge", server_url, "herald_bench_purge", "--results", str(results))
    # The purge's own progress is relayed; it deleted exactly the seeded old rows (checked).
    assert "bench: purge: notifications: 20,000 deleted (done)" in run.stderr
    assert "bench: purge: notification_requests: 400 deleted (done)" in run.stderr
    numbers = positive_result(RESULT, run.stdout)
    # The p99s are printed to 0.1 ms and the ratio is of the unrounded ones (CI once failed on
    # 2.77 printed against 2.78 computed from the rounded p99s).
    assert_printed_ratio(numbers["ratio"], numbers["during"], numbers["before"], step=0.1)
    section = results.read_text()
    assert "## Purge:" in section
    assert "| inbox during the purge |" in section
