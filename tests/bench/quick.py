"""Run a benchmark script at --quick sizes, as its smoke test does."""

import os
import re
import subprocess
import sys

from tests.db import ROOT

# A hang guard, not a performance check (the benches measure; tests don't time).
HANG_SECONDS = 300


def run_quick(
    module: str, server_url: str, database: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m <module> --quick` on its own database and return the finished run.

    Fails when the script fails, or hangs past HANG_SECONDS."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            "--quick",
            "--database-url",
            server_url,
            "--database-name",
            f"{database}_{os.getpid()}",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def positive_result(pattern: re.Pattern[str], stdout: str) -> dict[str, float]:
    """The named numbers of the `RESULT …` line that `pattern` finds in a run's stdout.

    Fails when there is no such line or when any of its numbers is not positive."""
    found = pattern.search(stdout)
    assert found is not None, stdout
    numbers = {k: float(v) for k, v in found.groupdict().items()}
    assert all(v > 0 for v in numbers.values()), numbers
    return numbers


def assert_printed_ratio(ratio: float, over: float, under: float, step: float) -> None:
    """Assert that a printed `ratio` (two decimals) is over ÷ under, where both were printed
    rounded to `step`: the true values lie within half a step of the printed ones, so the ratio
    may be anywhere between the extremes those allow."""
    half = step / 2
    low = (over - half) / (under + half)
    high = (over + half) / max(under - half, 1e-9)
    assert low - 0.005 <= ratio <= high + 0.005, (ratio, over, under, low, high)
