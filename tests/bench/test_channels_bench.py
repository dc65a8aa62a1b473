"""bench/channels.py end to end at --quick sizes: it runs, measures e-mail, webhooks and web
push and both send rates, and appends its section."""

import re
from pathlib import Path

import pytest

from tests.bench.quick import positive_result, run_quick

pytestmark = pytest.mark.live

RESULT = re.compile(
    r"^RESULT emails_per_s=(?P<emails>[\d.]+) webhooks_per_s=(?P<hooks>[\d.]+) "
    r"pushes_per_s=(?P<pushes>[\d.]+) inbox_p99_push_ms=(?P<push_p99>[\d.]+) "
    r"inbox_p99_idle_ms=(?P<idle>[\d.]+) inbox_p99_busy_ms=(?P<busy>[\d.]+) "
    r"sends_before=(?P<before>[\d.]+) sends_after=(?P<after>[\d.]+)$",
    re.MULTILINE,
)


def test_channels_bench_quick(server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n")
    run = run_quick(
        "bench.channels", server_url, "herald_bench_channels", "--results", str(results)
    )
    positive_result(RESULT, run.stdout)
    section = results.read_text()
    assert "## Channels:" in section
    assert "e-mails through the worker (50" in section
    assert "web pushes through the worker (50" in section
