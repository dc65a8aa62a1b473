"""bench/fanout.py end to end at --quick sizes: it runs, stops by itself, and measures."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT recipients_per_s=(?P<recipients>[\d.]+) copy_rows_per_s=(?P<copy>[\d.]+) "
    r"ratio=(?P<ratio>[\d.]+) sends_per_s=(?P<sends>[\d.]+)$",
    re.MULTILINE,
)


def test_fanout_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\n## Another section\n\nkept as it is\n")
    run = run_quick(
        "bench.fanout",
        server_url,
        "herald_bench_fanout",
        "--results",
        str(results),
    )
    # Progress while running; every fan-out and COPY was checked to write 2,000 rows.
    assert "bench: subscribed 2,000 / 2,000 (API)" in run.stderr
    assert "bench: fan-out to 2,000 subscribers" in run.stderr
    assert "bench: COPY of 2,000 rows" in run.stderr

    numbers = positive_result(RESULT, run.stdout)
    assert numbers["ratio"] == pytest.approx(numbers["recipients"] / numbers["copy"], rel=0.01)
    assert "bottleneck:" in run.stdout

    section = results.read_text()
    assert section.startswith("# Benchmarks\n\n## Another section\n\nkept as it is\n")
    assert "## Fan-out:" in section
    assert "2,000 subscribers" in section
    assert "--quick" in section
