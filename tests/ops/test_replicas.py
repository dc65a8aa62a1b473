"""Replicas: several `herald serve` started at once on one empty PostgreSQL server database.

They take turns migrating, make exactly one `default` app, and share one admin token: the
first generates it (printed once, kept in its data dir); the others accept its digest."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.server import stop_process
from tests.factories import TEST_SECRET_KEY
from tests.ops.support import CLEAN_ENV, ROOT, free_port, fresh_database, pg_server_or_skip
from tests.ops.support import scratch_dir as new_dir

REPLICAS = 4


@dataclass
class Replica:
    base: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    logs: Path

    @property
    def stdout(self) -> str:
        return (self.logs / "stdout").read_text()

    @property
    def stderr(self) -> str:
        return (self.logs / "stderr").read_text()

    def stop(self) -> None:
        stop_process(self.process, grace=20)


@pytest.fixture
def empty_database() -> Iterator[str]:
    with fresh_database(pg_server_or_skip(), "replicas") as url:
        yield url


@pytest.fixture
def replicas(empty_database: str) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    for _ in range(REPLICAS):
        port, data_dir, logs = free_port(), new_dir(), new_dir()
        env = {
            **CLEAN_ENV,
            "HERALD_DATABASE_URL": empty_database,
            "HERALD_DATA_DIR": str(data_dir),
            "HERALD_LOG_LEVEL": "info",
            "HERALD_SECRET_KEY": TEST_SECRET_KEY,
        }
        with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=err,
            )
        started.append(Replica(f"http://127.0.0.1:{port}", data_dir, process, logs))
    try:
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in started:
            replica.stop()


def wait_ready(replicas: list[Replica]) -> None:
    deadline = time.monotonic() + 120
    pending = list(replicas)
    while pending:
        for replica in list(pending):
            if replica.process.poll() is not None:
                code = replica.process.returncode
                pytest.fail(f"replica {replica.base} exited {code}:\n{replica.stderr}")
            try:
                if httpx.get(f"{replica.base}/ready", timeout=2).status_code == 200:
                    pending.remove(replica)
            except httpx.HTTPError:
                pass
        assert time.monotonic() < deadline, f"not ready: {[r.base for r in pending]}"
        time.sleep(0.2)


async def apps_in(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["name"] for row in await conn.fetch("SELECT name FROM apps ORDER BY id")]
    finally:
        await conn.close()


def test_replicas_share_one_start(empty_database: str, replicas: list[Replica]) -> None:
    wait_ready(replicas)
    assert asyncio.run(apps_in(empty_database)) == ["default"]

    token_files = [
        r.data_dir / "admin-token" for r in replicas if (r.data_dir / "admin-token").exists()
    ]
    assert len(token_files) == 1, token_files
    token = token_files[0].read_text().strip()
    assert oct(token_files[0].stat().st_mode & 0o777) == "0o600"
    for replica in replicas:
        listed = httpx.get(
            f"{replica.base}/admin/apps", headers={"Authorization": f"Bearer {token}"}
        )
        assert listed.status_code == 200, listed.text
        assert [a["name"] for a in listed.json()] == ["default"]
        refused = httpx.get(
            f"{replica.base}/admin/apps", headers={"Authorization": f"Bearer {token}x"}
        )
        assert refused.status_code == 401
    # An app made through one replica is seen by another: one database, one token.
    made = httpx.post(
        f"{replicas[0].base}/admin/apps",
        json={"name": "through-0"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    seen = httpx.get(
        f"{replicas[-1].base}/admin/apps/{made.json()['id']}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert seen.status_code == 200, seen.text

    for replica in replicas:
        replica.process.terminate()
    for replica in replicas:
        replica.stop()
    outputs = replicas
    # The token is printed once, by the replica that made it, and the default app once.
    shown = [r for r in outputs if f"Admin token (shown once): {token}" in r.stdout]
    assert len(shown) == 1, [r.stdout for r in outputs]
    assert shown[0].data_dir == token_files[0].parent
    assert sum("App 'default' created" in r.stdout for r in outputs) == 1
    for replica in outputs:
        assert "Traceback" not in replica.stderr, replica.stderr
        # Every line on stderr is a JSON log record (the banner is on stdout).
        for line in replica.stderr.splitlines():
            record = json.loads(line)
            assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
    # One applied the migrations; the others waited for it and found none left.
    applied = sum("Running upgrade  -> 0001_initial" in replica.stderr for replica in outputs)
    assert applied == 1
