"""bench/procs.py end to end at --quick sizes: turns on 1, 2 and 2 pinned processes, both
transports."""

import re
import shutil

import pytest

from tests.bench.quick import run_quick
from tests.redis_peer import REDIS_URL, skip_without_redis

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


def test_procs_bench_quick(server_url: str) -> None:
    skip_without_redis()
    run = run_quick(
        "bench.procs",
        server_url,
        "herald_bench_procs",
        "--runs",
        "2",
        "--hot-users",
        "0",
        "--redis-url",
        REDIS_URL,
    )
    out, err = run.stdout, run.stderr
    # Every figure in turns, each turn a run on each of the three servers.
    steps = re.findall(r"bench: (.+), turn (\d)/2", err)
    figures = ["inbox page of u0", "1-recipient sends to 1,000 users"]
    assert steps == [(f, t) for f in figures for t in ("1", "2")], err
    for figure in figures:
        for setup in ("1", "2", "2, pinned"):
            row = re.search(rf"^\| {re.escape(figure)} \| {setup} \| ([\d,]+) \|", out, re.M)
            assert row is not None, out
            assert int(row[1].replace(",", "")) > 0, out
        said = rf"^- {re.escape(figure)}: 2 processes give \d+\.\d\d times the req/s of 1; "
        said += r"2 pinned processes give \d+\.\d\d times"
        assert re.search(said, out, re.M), out
    assert "2 turns per figure" in out, out
    for transport in ("NOTIFY", "Redis"):
        assert f"| {transport} | 200 of 200 |" in out, out
