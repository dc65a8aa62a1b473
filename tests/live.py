"""Start real Herald processes for tests that need a socket (SDKs, several processes)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests import db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(
    database_url: str,
    *,
    admin_token: str,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[str]:
    """`herald serve [args]` on `database_url`; yields its base URL once it is ready."""
    server = running_process(database_url, admin_token=admin_token, extra_env=extra_env, args=args)
    with server as (base, _):
        yield base


@contextmanager
def running_process(
    database_url: str,
    *,
    admin_token: str,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like `running_server`, and yields the process too (for its pid)."""
    port = free_port()
    data_dir = db.scratch_dir()
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_ADMIN_TOKEN": admin_token,
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    log = Path(data_dir) / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"herald exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"herald did not become ready:\n{log.read_text()}")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
