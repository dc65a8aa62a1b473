"""bench/rates.py end to end at --quick sizes: wrk drives a real server and both rates come back."""

import re
import shutil

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT health_per_s=(?P<health>[\d.]+) send_per_s=(?P<send>[\d.]+) "
    r"health_cpu_ms=(?P<health_cpu>[\d.]+) send_cpu_ms=(?P<send_cpu>[\d.]+)$",
    re.M,
)


def test_wrk_bench_quick(server_url: str) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    run = run_quick("bench.rates", server_url, "herald_bench_rates")
    numbers = positive_result(RESULT, run.stdout)
    # A send does far more work than /health.
    assert numbers["send_cpu"] > numbers["health_cpu"], numbers
