"""The benchmarks' infrastructure: fresh databases beside a server, and a real Herald process."""

import argparse
import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from app.apps.models import App
from app.apps.sealing import open_value
from app.embedded import EmbeddedPostgres
from app.keyring import from_secret
from app.runtime import create_app_record, migrate
from bench.seed import progress

ROOT = Path(__file__).resolve().parent.parent


# Seals the app secrets of every server these launch, and of the apps made beforehand
# (create_app_record(url, KEYRING, …)). Fixed, not random: a database kept by one run
# (--keep) is served again by the next (--reuse, bench.profile), which must open it.
SECRET_KEY = "herald-bench-secret-key-not-for-production"
KEYRING = from_secret(SECRET_KEY)


@dataclass(frozen=True)
class AppKeys:
    api_key: str
    api_secret: str  # opened: as a backend sends it


async def app_keys(url: str, name: str = "bench") -> AppKeys | None:
    """The API key and the opened secret of app `name` in the database at `url`."""
    conn = await asyncpg.connect(plain(url))
    try:
        row = await conn.fetchrow("SELECT api_key, api_secret FROM apps WHERE name = $1", name)
    finally:
        await conn.close()
    if row is None:
        return None
    api_key = str(row["api_key"])
    return AppKeys(api_key, open_value(KEYRING, api_key, str(row["api_secret"])))


def add_database_arguments(
    parser: argparse.ArgumentParser,
    *,
    data_dir: Path,
    name: str | None = None,
    name_help: str | None = None,
    data_dir_help: str = "for pgserver",
    results: str | None = None,
) -> None:
    """--database-url, --database-name (default `name`) and --data-dir (default `data_dir`);
    with `results` (what the run does to the file: "append to", "update") also --results and
    --keep."""
    parser.add_argument("--database-url", help="a PostgreSQL server to use instead of pgserver")
    parser.add_argument("--database-name", default=name, help=name_help)
    parser.add_argument("--data-dir", type=Path, default=data_dir, help=data_dir_help)
    if results is not None:
        parser.add_argument(
            "--results",
            type=Path,
            help=f"Markdown file to {results} (default bench/RESULTS.md; none for --quick)",
        )
        parser.add_argument("--keep", action="store_true", help="keep the database afterwards")


def given_server(database_url: str | None) -> str | None:
    """--database-url as an asyncpg URL, or None when the run is to start pgserver."""
    return asyncpg_url(database_url) if database_url else None


@contextmanager
def postgres_server(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """Yield the PostgreSQL server URL to create databases beside: `database_url` when given,
    else an embedded pgserver in `data_dir`, started here and stopped on the way out."""
    embedded = None if database_url else EmbeddedPostgres(data_dir)
    if embedded is not None:
        progress(f"bench: starting embedded PostgreSQL in {embedded.pgdata}")
    server_url = database_url or (embedded.start() if embedded else "")
    try:
        yield server_url
    finally:
        if embedded is not None:
            embedded.stop()


@contextmanager
def exclusive(server_url: str, name: str) -> Iterator[None]:
    """Hold a session lock for `name`, so two runs never drop each other's database."""
    dsn = plain(server_url)

    async def take() -> asyncpg.Connection:
        conn = await asyncpg.connect(dsn)
        key = "bench.inbox:" + name
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
            await conn.close()
            raise SystemExit(f"another bench.inbox run is using database {name}; wait for it")
        return conn

    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(take())
        try:
            yield
        finally:
            loop.run_until_complete(conn.close())
    finally:
        loop.close()


async def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL server's pid, when it runs on this machine and we may read its data dir."""
    conn = await asyncpg.connect(dsn)
    try:
        data_dir = await conn.fetchval("SHOW data_directory")
    except asyncpg.InsufficientPrivilegeError:
        return None
    finally:
        await conn.close()
    try:
        return int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def asyncpg_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def beside(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def recreate(server_url: str, name: str, settings: Sequence[tuple[str, str]] = ()) -> str:
    await drop(server_url, name)
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        for key, value in settings:
            quoted = value.replace("'", "''")
            await conn.execute(f"ALTER DATABASE \"{name}\" SET {key} = '{quoted}'")
    finally:
        await conn.close()
    return beside(server_url, name)


def fresh_app_database(
    server_url: str, name: str, settings: Sequence[tuple[str, str]] = ()
) -> tuple[str, App]:
    """Recreate database `name` beside `server_url`, migrate it and create an app "bench";
    return the database URL and the app (with its plaintext secret)."""
    url = asyncio.run(recreate(server_url, name, settings))
    progress(f"bench: fresh database {name}; applying migrations")
    migrate(url)
    return url, create_app_record(url, KEYRING, "bench")


async def drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def herald(
    url: str,
    *,
    admin_token: str | None = None,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m app.cli serve [args]` on a free 127.0.0.1 port; yield its base URL and
    process once `/ready` answers. The benchmarks and the tests' live servers both use this.
    `cwd` runs another checkout's `app` (its directory comes first on the module path)."""
    workdir = Path(tempfile.mkdtemp(prefix="herald-"))
    port = free_port()
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": url,
        "HERALD_ADMIN_TOKEN": admin_token or secrets.token_urlsafe(24),
        "HERALD_DATA_DIR": str(workdir),
        "HERALD_LOG_LEVEL": "warning",
        "HERALD_SECRET_KEY": SECRET_KEY,
        **(extra_env or {}),
    }
    log = workdir / "server.log"
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd or ROOT,
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
        progress(f"herald serving at {base} (pid {proc.pid})")
        yield base, proc
    finally:
        stop_process(proc)
        problems = [line for line in log.read_text().splitlines() if "Traceback" in line]
        if problems:
            progress(f"herald logged errors; see {log}")


def stop_process(proc: subprocess.Popen[bytes], *, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on, not handed out before by this process, and
    below the kernel's ephemeral range.

    Binding port 0 can give a port again once it is closed, and a port from the ephemeral
    range can be taken, between this check and the server's bind, as the local end of an
    outgoing connection (servers starting meanwhile connect to PostgreSQL over TCP). Once, a
    replica of tests/ops/test_replicas.py found its port taken and exited, and whatever held
    the port answered that replica's /ready."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 16_000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # a crowded range: the kernel's choice after all
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768
