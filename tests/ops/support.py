"""Run the real `herald` command in a subprocess, and PostgreSQL servers to point it at."""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

# Re-exported: the ops tests take their ports from here.
from bench.server import free_port as free_port

ROOT = Path(__file__).resolve().parents[2]
# The install and fault tests name another server the same way (tests/shared_server.py).
PG_SERVER = os.environ.get(
    "HERALD_TEST_PGSERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# HERALD_* settings of the developer's shell must not leak into the command under test.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def herald(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> Run:
    """`herald ARGS` with exactly the HERALD_ settings in `env`."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="herald-ops-"))


def pg_server_or_skip(needed_by: str = "this test") -> str:
    """The PostgreSQL server PG_SERVER names; skip when absent, unless it is required."""

    async def probe() -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        where = PG_SERVER.rsplit("@", 1)[-1]
        reason = f"no PostgreSQL server at {where} ({exc}): {needed_by} needs one"
        if os.environ.get("HERALD_REQUIRE_PGSERVER") == "1":
            pytest.fail(reason + " and HERALD_REQUIRE_PGSERVER=1")
        pytest.skip(reason)
    return PG_SERVER


@contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[str]:
    """A new database beside `server`'s (its name ends in our pid, so a crashed run's copy
    is swept up by tests/db.py); yields its postgresql:// URL and drops it afterwards."""
    name = f"herald_test_{prefix}_{os.getpid()}"
    base, _, query = server.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(server.replace("+asyncpg", "", 1))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.replace("+asyncpg", "", 1)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def password_server(user: str, password: str) -> Iterator[int]:
    """A throw-away PostgreSQL cluster that checks passwords (SCRAM), on a loopback port.

    The shared server trusts every local connection, so a wrong password needs its own."""
    import pgserver
    from pgserver import utils as pg_utils

    binaries = Path(pgserver.__file__).parent / "pginstall" / "bin"
    home = Path(tempfile.mkdtemp(prefix="herald-pw-"))
    data, sockets, pwfile = home / "data", home / "sock", home / "pw"
    sockets.mkdir()
    pwfile.write_text(password + "\n")
    as_user: str | None = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; pgserver runs it as this user too.
        import pwd

        pg_utils.ensure_user_exists("pgserver")
        pg_utils.ensure_prefix_permissions(binaries)
        pg_utils.ensure_folder_permissions(binaries, 0o055)
        pg_utils.ensure_folder_permissions(binaries.parent / "lib", 0o044)
        entry = pwd.getpwnam("pgserver")
        for path in (home, sockets, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = "pgserver"
    subprocess.run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        user=as_user,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=as_user,
    )
    try:
        _wait_for(f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres", server)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(dsn: str, server: subprocess.Popen[bytes]) -> None:
    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=2)
        await conn.close()

    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise RuntimeError("the password-checking PostgreSQL exited at start")
        try:
            asyncio.run(probe())
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def secret_token() -> str:
    return secrets.token_urlsafe(24)
