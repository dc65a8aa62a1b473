"""`herald purge`: the same purge at once, progress on stderr, counts on stdout."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.cli import main
from tests.db import ROOT
from tests.retention import seed
from tests.retention.seed import DAY


def herald(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**os.environ, "HERALD_LOG_LEVEL": "warning", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_herald_purge(
    maker: async_sessionmaker[AsyncSession],
    retention_engine: AsyncEngine,
    retention_url: str,
    tmp_path: Path,
) -> None:
    engine = retention_engine
    app, users = await seed.app_with_users(maker, 12)
    await seed.sent(engine, app, users, age=40 * DAY)
    _, young_rows = await seed.sent(engine, app, users, age=10 * DAY)
    env = {
        "HERALD_DATABASE_URL": retention_url,
        "HERALD_DATA_DIR": str(tmp_path),
        "HERALD_RETENTION_DAYS": "30",
    }

    run = await asyncio.to_thread(herald, "purge", "--batch-size", "5", env=env)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "notifications": 12,
        "notification_requests": 1,
        "idempotency_keys": 0,
        "pgqueuer_log": 0,
        "pgqueuer_statistics": 0,
    }
    lines = [line for line in run.stderr.splitlines() if line.startswith("purge:")]
    assert lines[0] == (
        "purge: inbox rows kept 30 days, finished requests kept 30 days; 5 rows per batch"
    )
    assert "purge: notifications: 12 deleted (done)" in lines
    assert "purge: notification_requests: 1 deleted (done)" in lines
    assert lines[-1].startswith("purge: done in ")
    assert lines[-1].endswith(" s, 13 rows deleted")
    assert await seed.present(engine, "notifications", "id", young_rows) == young_rows


def test_herald_purge_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["purge", "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "HERALD_RETENTION_DAYS" in shown
    assert "HERALD_REQUEST_RETENTION_DAYS" in shown
    assert "--batch-size" in shown
    with pytest.raises(SystemExit) as refused:
        main(["purge", "--batch-size", "0"])
    assert refused.value.code == 2
    assert "--batch-size: must be a whole number of rows, at least 1: '0'" in (
        capsys.readouterr().err
    )
