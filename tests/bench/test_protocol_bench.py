"""bench/protocol.py at --quick sizes: both protocols serve wrk and their costs come back."""

import re
import shutil
import subprocess
import sys

import pytest

from tests.db import ROOT

RESULT = re.compile(
    r"^RESULT uvicorn_us=(?P<uvicorn>[\d.]+) herald_us=(?P<herald>[\d.]+) "
    r"extra_us=(?P<extra>-?[\d.]+)$",
    re.M,
)


def test_protocol_bench_quick() -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    run = subprocess.run(
        [sys.executable, "-m", "bench.protocol", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    found = RESULT.search(run.stdout)
    assert found is not None, run.stdout
    assert float(found["uvicorn"]) > 0
    assert float(found["herald"]) > 0
