"""bench/all.py end to end at --quick sizes: one server, every figure, the targets table."""

import shutil

import pytest

from tests.bench.quick import run_quick

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


def test_all_bench_quick(server_url: str) -> None:
    run = run_quick("bench.all", server_url, "herald_bench_all")
    out = run.stdout
    for figure in (
        "| inbox u0 (1,000 of 10,000) c=32 |",
        "| inbox k1 (100 rows) c=32 |",
        "| inbox m1 (3,000 rows) c=32 |",
        "| inbox u0 c=4 |",
        "| 1-recipient sends c=32 |",
        "| /health c=4 during a 2,000-recipient fan-out |",
    ):
        assert figure in out, out
    assert out.count("| yes |") + out.count("| **no** |") == 5, out
    assert "Fan-outs during the /health runs:" in out
