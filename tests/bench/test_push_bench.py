"""bench/channels.py --push end to end at --quick sizes: every push provider and the webhook
baseline deliver, one FCM grant serves the run, and the section is appended."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT default_webhook_per_s=(?P<hooks>[\d.]+) fcm_per_s=(?P<fcm>[\d.]+) "
    r"apns_per_s=(?P<apns>[\d.]+) expo_per_s=(?P<expo>[\d.]+) "
    r"inbox_p99_idle_ms=(?P<idle>[\d.]+) grants=(?P<grants>\d+)$",
    re.MULTILINE,
)


def test_push_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n")
    run = run_quick(
        "bench.channels", server_url, "herald_bench_push", "--push", "--results", str(results)
    )
    numbers = positive_result(RESULT, run.stdout)
    assert numbers["grants"] == 1
    section = results.read_text()
    assert "## Push:" in section
    assert "APNs (HTTP/2 + TLS" in section
