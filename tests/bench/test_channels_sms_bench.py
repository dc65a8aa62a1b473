"""bench/channels.py --sms end to end at --quick sizes: it runs, measures SMS and the webhook
baseline with the inbox p99, and appends its section."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT sms_per_s=(?P<sms>[\d.]+) webhooks_per_s=(?P<hooks>[\d.]+) "
    r"inbox_p99_idle_ms=(?P<idle>[\d.]+) inbox_p99_sms_ms=(?P<busy>[\d.]+)$",
    re.MULTILINE,
)


def test_channels_sms_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n")
    run = run_quick(
        "bench.channels", server_url, "herald_bench_sms", "--sms", "--results", str(results)
    )
    positive_result(RESULT, run.stdout)
    section = results.read_text()
    assert "## Channels, SMS:" in section
    assert "SMS through the worker (50" in section
