"""Run a benchmark script at --quick sizes, as its smoke test does."""

import os
import subprocess
import sys
import time

from tests.db import ROOT

LIMIT_SECONDS = 60


def run_quick(
    module: str, server_url: str, database: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m <module> --quick` on its own database and return the finished run.

    Fails when the script fails or takes longer than LIMIT_SECONDS."""
    started = time.monotonic()
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
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-4000:]
    assert elapsed < LIMIT_SECONDS, f"--quick took {elapsed:.0f}s"
    return run
