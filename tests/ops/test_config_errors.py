"""A bad setting is one line on stderr naming it, a non-zero exit, no traceback, no password.

Each case in the issue runs the real `herald` command in a subprocess; variants of a case
check the same message-making code in-process."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from app import runtime
from app.config import Settings
from app.ops import preflight
from app.ops.problems import ConfigError, redact, settings_problem
from tests import db
from tests.ops.support import CLEAN_ENV, ROOT, Run, free_port, herald, password_server, scratch_dir

PASSWORD = "Pa55-w0rd-never-shown"
EX_CONFIG = 78


def one_line(run: Run, expected: str, *, code: int = EX_CONFIG) -> None:
    """The run failed with exactly `expected` as its only stderr line."""
    assert "Traceback" not in run.output, run.output
    assert PASSWORD not in run.output, run.output
    assert run.code == code, run.output
    assert run.stderr.splitlines() == [expected], run.output


@pytest.fixture
def data_dir() -> Path:
    return scratch_dir()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


# --- the database ---------------------------------------------------------------------------


def test_closed_port(data_dir: Path) -> None:
    port = closed_port()
    url = f"postgresql://herald:{PASSWORD}@127.0.0.1:{port}/herald"
    run = herald("serve", env={"HERALD_DATABASE_URL": url, "HERALD_DATA_DIR": str(data_dir)})
    one_line(
        run,
        f"herald: HERALD_DATABASE_URL: cannot connect to postgresql://herald:***@127.0.0.1:"
        f"{port}/herald: connection refused: nothing listens at 127.0.0.1:{port}",
    )
    assert run.stdout == ""


@pytest.fixture(scope="module")
def checking_server() -> Iterator[int]:
    with password_server("herald", PASSWORD) as port:
        yield port


def test_wrong_password(checking_server: int, data_dir: Path) -> None:
    wrong = f"postgresql://herald:not-{PASSWORD}@127.0.0.1:{checking_server}/postgres"
    run = herald("serve", env={"HERALD_DATABASE_URL": wrong, "HERALD_DATA_DIR": str(data_dir)})
    one_line(
        run,
        f"herald: HERALD_DATABASE_URL: cannot connect to postgresql://herald:***@127.0.0.1:"
        f"{checking_server}/postgres: password authentication failed for user 'herald'",
    )
    # The same server with the right password migrates: the refusal was the password's.
    right = wrong.replace(f"not-{PASSWORD}", PASSWORD)
    ok = herald("migrate", env={"HERALD_DATABASE_URL": right})
    assert ok.code == 0, ok.output
    assert ok.stdout.startswith("database schema at "), ok.output


def test_missing_database(checking_server: int) -> None:
    url = f"postgresql+asyncpg://herald:{PASSWORD}@127.0.0.1:{checking_server}/nowhere"
    with pytest.raises(ConfigError) as refused:
        preflight.database(url)
    assert str(refused.value) == (
        f"HERALD_DATABASE_URL: cannot connect to postgresql://herald:***@127.0.0.1:"
        f"{checking_server}/nowhere: database 'nowhere' does not exist (create it first)"
    )


def test_malformed_url() -> None:
    # SQLAlchemy's own error for this URL quotes it whole, password included.
    url = f"postgresql://herald:{PASSWORD}@db.internal:54x2/herald"
    one_line(
        herald("serve", env={"HERALD_DATABASE_URL": url}),
        "herald: HERALD_DATABASE_URL: the port must be a number "
        "(got 'postgresql://herald:***@db.internal:54x2/herald')",
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            f"postgresql://herald:{PASSWORD}@extra@db.internal/herald",
            "has an unescaped '@': write '@' in the password as %40 "
            "(got 'postgresql://herald:***@db.internal/herald')",
        ),
        (
            f"mysql://herald:{PASSWORD}@db.internal/herald",
            "must be a URL like postgresql://user:password@host:5432/database "
            "(got 'mysql://herald:***@db.internal/herald')",
        ),
        (
            # Too mangled to tell the password from the rest: not echoed at all.
            f"postgresql:/herald:{PASSWORD}@db.internal/herald",
            "must be a URL like postgresql://user:password@host:5432/database",
        ),
        (
            f"postgresql://herald:{PASSWORD}@db.internal",
            "names no database: add /<database> after the host "
            "(got 'postgresql://herald:***@db.internal')",
        ),
        (
            f"postgresql://herald@db.internal:x/herald?password={PASSWORD}&sslmode=require",
            "the port must be a number "
            "(got 'postgresql://herald@db.internal:x/herald?password=***&sslmode=require')",
        ),
    ],
    ids=["at-sign", "scheme", "slashes", "no-database", "query-password"],
)
def test_malformed_url_variants(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url=url)
    message = str(settings_problem(refused.value))
    assert message == f"HERALD_DATABASE_URL: {problem}"
    assert PASSWORD not in message


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact("postgresql://u:p@w@h/d") == "postgresql://u:***@h/d"
    assert redact("postgresql://h/d?password=pw") == "postgresql://h/d?password=***"
    assert redact("postgresql:u:pw@h/d") is None


# --- the port -------------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture(scope="module")
def startup_baseline() -> float:
    """Seconds `herald --version` takes: the imports every command pays before its work."""
    started = time.monotonic()
    assert herald("--version").code == 0
    return time.monotonic() - started


@pytest.mark.parametrize("via", ["flag", "env"])
def test_port_in_use(via: str, taken_port: int, data_dir: Path, startup_baseline: float) -> None:
    env = {
        # Never reached: the port is checked before the database.
        "HERALD_DATABASE_URL": f"postgresql://herald:{PASSWORD}@127.0.0.1:{closed_port()}/h",
        "HERALD_DATA_DIR": str(data_dir),
    }
    args = ["serve"]
    if via == "flag":
        args += ["--port", str(taken_port)]
    else:
        env["HERALD_PORT"] = str(taken_port)
    started = time.monotonic()
    run = herald(*args, env=env)
    elapsed = time.monotonic() - started
    setting = "--port" if via == "flag" else "HERALD_PORT"
    one_line(
        run,
        f"herald: {setting}: port {taken_port} on 127.0.0.1 is already in use by another process",
    )
    assert run.stdout == ""  # no banner at all
    assert elapsed - startup_baseline < 3, (elapsed, startup_baseline)


@pytest.fixture(scope="module")
def served_database(server_url: str) -> Iterator[str]:
    name = f"herald_test_ops_bind_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    yield url
    asyncio.run(db.drop(server_url, name))


# The port check passes, then another process holds the port when uvicorn binds: the race
# the check cannot close. Here the check is made to pass once, the first time it runs.
RACE = """
import sys
from app.ops import preflight
from app import cli
real = preflight.port
calls = []
def first_passes(*args, **kwargs):
    calls.append(1)
    if len(calls) > 1:
        real(*args, **kwargs)
preflight.port = first_passes
cli.main(sys.argv[1:])
"""


def test_port_taken_when_uvicorn_binds(
    served_database: str, taken_port: int, data_dir: Path
) -> None:
    settings = {
        "HERALD_DATABASE_URL": served_database,
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_ADMIN_TOKEN": "a-token-of-sufficient-length",
        "HERALD_SECRET_KEY": "a-secret-key-of-sufficient-length-for-herald",
    }
    done = subprocess.run(
        [sys.executable, "-c", RACE, "serve", "--port", str(taken_port)],
        env={**CLEAN_ENV, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    exited = datetime.now(UTC)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode == EX_CONFIG, output
    assert "running" not in done.stdout
    assert "starting on" in done.stdout
    lines = done.stderr.splitlines()
    assert lines[-1] == (
        f"herald: --port: port {taken_port} on 127.0.0.1 is already in use by another process"
    )
    # Everything before it is uvicorn's and Herald's own log, as JSON.
    logged = [json.loads(line) for line in lines[:-1]]
    refused = [
        entry
        for entry in logged
        if entry["logger"] == "uvicorn.error" and "address already in use" in entry["message"]
    ]
    assert len(refused) == 1, logged
    # From uvicorn giving up to the process gone: the lifespan's shutdown (the worker
    # among it) does not wait for anything. It took 33 s when the worker ignored the stop.
    stopping = exited - datetime.fromisoformat(refused[0]["timestamp"])
    assert stopping.total_seconds() < 3, stopping


def test_schema_newer_than_this_herald(server_url: str, data_dir: Path) -> None:
    # What an older Herald finds on a database a newer one migrated: a revision it lacks.
    name = f"herald_test_ops_newer_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    try:
        asyncio.run(_stamp(url, "0999_from_the_future"))
        run = herald("migrate", env={"HERALD_DATABASE_URL": url, "HERALD_DATA_DIR": str(data_dir)})
        one_line(
            run,
            "herald: the database schema is at revision '0999_from_the_future', which this "
            f"Herald does not know (its newest is {runtime.head_revision()!r}): a newer "
            "Herald migrated it; run that version or a later one",
        )
        assert asyncio.run(_stamped(url)) == "0999_from_the_future"  # nothing was changed
    finally:
        asyncio.run(db.drop(server_url, name))


async def _stamp(url: str, revision: str) -> None:
    conn = await asyncpg.connect(db.plain(url))
    try:
        await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        await conn.execute("INSERT INTO alembic_version VALUES ($1)", revision)
    finally:
        await conn.close()


async def _stamped(url: str) -> str:
    conn = await asyncpg.connect(db.plain(url))
    try:
        revision: str = await conn.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await conn.close()


# --- the admin token, the data dir, other values ---------------------------------------------


def test_short_admin_token() -> None:
    token = "short-token"
    run = herald("serve", env={"HERALD_ADMIN_TOKEN": token})
    one_line(run, "herald: HERALD_ADMIN_TOKEN: must be at least 16 characters (it has 11)")
    assert token not in run.output


@pytest.mark.parametrize("command", [["serve"], ["migrate"]])
def test_unwritable_data_dir(command: list[str], data_dir: Path) -> None:
    blocker = data_dir / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "herald"
    env = {"HERALD_DATA_DIR": str(target)}
    if command == ["serve"]:
        # The admin token file goes there even with an external database.
        env["HERALD_DATABASE_URL"] = f"postgresql://h:{PASSWORD}@127.0.0.1:{closed_port()}/h"
    # (`migrate` without a URL starts the embedded PostgreSQL there.)
    one_line(
        herald(*command, env=env),
        f"herald: HERALD_DATA_DIR: cannot write to {target}: Not a directory",
    )


def test_invalid_value() -> None:
    one_line(
        herald("serve", env={"HERALD_PORT": "abc"}),
        "herald: HERALD_PORT: must be a whole number (got 'abc')",
    )


def test_several_invalid_values_one_line_each() -> None:
    env = {
        "HERALD_PORT": "70000",
        "HERALD_WORKER": "maybe",
        "HERALD_LOG_LEVEL": "loud",
        "HERALD_SECRET_GRACE": "soon",
        "HERALD_DB_POOL_SIZE": "0",
    }
    run = herald("serve", env=env)
    assert run.code == EX_CONFIG, run.output
    assert "Traceback" not in run.output
    assert sorted(run.stderr.splitlines()) == [
        "herald: HERALD_DB_POOL_SIZE: must be at least 1 (got '0')",
        "herald: HERALD_LOG_LEVEL: must be one of 'debug', 'info', 'warning', 'error' or "
        "'critical' (got 'loud')",
        "herald: HERALD_PORT: must be at most 65535 (got '70000')",
        "herald: HERALD_SECRET_GRACE: must be a duration such as 24h, 30m, 90s, or 0 to "
        "disable (got 'soon')",
        "herald: HERALD_WORKER: must be true or false (got 'maybe')",
    ]
