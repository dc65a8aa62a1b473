"""bench/realtime.py end to end at --quick sizes: it runs, stops by itself, and measures."""

import json
import math
from pathlib import Path

import pytest

from tests.bench.quick import run_quick

pytestmark = pytest.mark.live


def test_realtime_bench_quick(server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "realtime.json"
    results = tmp_path / "RESULTS.md"
    run = run_quick(
        "bench.realtime",
        server_url,
        "herald_bench_rt",
        "--data-dir",
        str(tmp_path),
        "--json",
        str(out),
        "--results",
        str(results),
    )
    assert "POST -> event on socket" in run.stdout
    assert "connected" in run.stderr  # progress while connecting

    data = json.loads(out.read_text())
    sends = data["sends"]
    assert sends["sent"] == sends["planned"] > 0
    assert sends["delivered"] == sends["sent"]
    assert sends["lost"] == sends["misrouted"] == sends["duplicated"] == 0
    for dist in ("http", "event"):
        for stat in ("p50", "p99", "max", "mean"):
            value = sends[dist][stat]
            assert math.isfinite(value), (dist, stat, value)
            assert value > 0, (dist, stat, value)
    assert sends["ratio_p50"] > 0
    assert sends["ratio_p99"] > 0

    assert data["base_rss_mb"] > 0
    memory = data["memory"][0]
    assert memory["sockets"] == 20
    assert memory["server_rss_mb"] > 0
    assert memory["per_socket_kb"] > 0
    idle = data["idle"][0]["cpu"]
    assert idle["seconds"] > 0
    assert idle["server"] >= 0

    section = results.read_text()
    assert "## Realtime:" in section
    assert "--quick" in section
