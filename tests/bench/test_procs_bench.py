"""bench/procs.py end to end at --quick sizes: rounds of 1 and 2 processes, both transports."""

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
    # Each round serves every figure from a fresh server of each count, 1 before 2.
    steps = re.findall(r"bench: round (\d)/2, (\d) process\(es\), (.+)", err)
    assert [(r, n) for r, n, _ in steps] == [
        ("1", "1"),
        ("1", "1"),
        ("1", "2"),
        ("1", "2"),
        ("2", "1"),
        ("2", "1"),
        ("2", "2"),
        ("2", "2"),
    ], err
    assert {f for _, _, f in steps} == {"inbox page of u0", "1-recipient sends to 1,000 users"}
    for figure in ("inbox page of u0", "1-recipient sends to 1,000 users"):
        for count in (1, 2):
            row = re.search(rf"^\| {re.escape(figure)} \| {count} \| ([\d,]+) \|", out, re.M)
            assert row is not None, out
            assert int(row[1].replace(",", "")) > 0, out
        assert re.search(rf"^- {re.escape(figure)}: 2 processes give \d+\.\d\d times", out, re.M)
    assert "2 runs of 1 s per figure" in out, out
    for transport in ("NOTIFY", "Redis"):
        assert f"| {transport} | 200 of 200 |" in out, out
