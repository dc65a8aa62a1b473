"""bench/metrics.py end to end at --quick sizes: wrk against metrics on and off."""

import re
import shutil

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]

RESULT = re.compile(
    r"^RESULT on_rps=(?P<on>\d+) off_rps=(?P<off>\d+) ratio=(?P<ratio>[\d.]+) "
    r"cpu_us_on=(?P<cpu_on>\d+) cpu_us_off=(?P<cpu_off>\d+) layer_us=(?P<layer>[\d.]+)$",
    re.MULTILINE,
)


def test_metrics_bench_quick(server_url: str) -> None:
    run = run_quick("bench.metrics", server_url, "herald_bench_metrics")
    numbers = positive_result(RESULT, run.stdout)
    assert numbers["ratio"] == pytest.approx(numbers["on"] / numbers["off"], abs=0.01)
    assert "round 2/2 metrics on" in run.stderr
