"""The operator CLI: --version, --help everywhere, apps list / rotate-secret, requests show."""

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from app import cli
from app.apps import sealing
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from tests import db
from tests.factories import TEST_KEYRING, TEST_SECRET_KEY, send_body
from tests.ops.support import herald

NAME = f"herald_test_cli_{os.getpid()}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"herald {cli.version()}"
    assert cli.version() != "unknown"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ([], "serve"),
        (["serve"], "--no-worker"),
        (["worker"], "--concurrency"),
        (["migrate"], "newest revision"),
        (["apps"], "rotate-secret"),
        (["apps", "list"], "--json"),
        (["apps", "create"], "--name"),
        (["apps", "rotate-secret"], "HERALD_SECRET_GRACE"),
        (["requests"], "show"),
        (["requests", "show"], "REQUEST_ID"),
    ],
)
def test_help(command: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: herald")
    assert says in out


@pytest.fixture(scope="module")
def cli_database(server_url: str) -> Iterator[str]:
    url = asyncio.run(db.recreate(server_url, NAME))
    yield url
    asyncio.run(db.drop(server_url, NAME))


async def app_row(url: str, app_id: int) -> asyncpg.Record:
    conn = await asyncpg.connect(db.plain(url))
    try:
        row: asyncpg.Record = await conn.fetchrow("SELECT * FROM apps WHERE id = $1", app_id)
        return row
    finally:
        await conn.close()


def opened(api_key: str, value: str) -> str:
    assert value.startswith("v1:")
    return sealing.open_value(TEST_KEYRING, api_key, value)


def test_apps_and_rotation(cli_database: str) -> None:
    env = {"HERALD_DATABASE_URL": cli_database, "HERALD_SECRET_KEY": TEST_SECRET_KEY}
    made = herald("apps", "create", "--name", "cli-app", env=env)
    assert made.code == 0, made.output
    app = json.loads(made.stdout)
    # Migrations ran first, each step logged as JSON.
    steps = [json.loads(line)["message"] for line in made.stderr.splitlines()]
    assert any(s.startswith("Running upgrade 0004_admin_token -> ") for s in steps), steps

    table = herald("apps", "list", env=env)
    assert table.code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "API", "KEY", "CREATED", "OLD", "SECRET", "UNTIL"]
    assert [row.split()[:3] for row in rows] == [[str(app["id"]), "cli-app", app["apiKey"]]]
    assert app["apiSecret"] not in table.stdout

    listed = herald("apps", "list", "--json", env=env)
    assert [a["apiKey"] for a in json.loads(listed.stdout)] == [app["apiKey"]]
    assert "apiSecret" not in listed.stdout

    # HERALD_SECRET_GRACE sets how long the old secret lasts.
    before = datetime.now(UTC)
    rotated = herald(
        "apps", "rotate-secret", str(app["id"]), env={**env, "HERALD_SECRET_GRACE": "90s"}
    )
    after = datetime.now(UTC)
    assert rotated.code == 0, rotated.output
    first = json.loads(rotated.stdout)
    assert first["apiSecret"] != app["apiSecret"]
    row = asyncio.run(app_row(cli_database, app["id"]))
    # Sealed at rest: the columns open to the secrets shown.
    assert opened(app["apiKey"], row["api_secret"]) == first["apiSecret"]
    assert opened(app["apiKey"], row["previous_api_secret"]) == app["apiSecret"]
    # 90 s from the moment of the rotation, which lies between `before` and `after`
    # (however long the command took to start).
    expires = row["previous_secret_expires_at"]
    slack = timedelta(seconds=1)
    assert (
        before + timedelta(seconds=90) - slack <= expires <= after + timedelta(seconds=90) + slack
    )
    assert datetime.fromisoformat(first["previousSecretExpiresAt"]) == row[
        "previous_secret_expires_at"
    ].replace(microsecond=row["previous_secret_expires_at"].microsecond // 1000 * 1000)

    # --grace 0: a leaked secret stops at once.
    leaked = herald("apps", "rotate-secret", str(app["id"]), "--grace", "0", env=env)
    second = json.loads(leaked.stdout)
    assert second["previousSecretExpiresAt"] is None
    row = asyncio.run(app_row(cli_database, app["id"]))
    assert opened(app["apiKey"], row["api_secret"]) == second["apiSecret"]
    assert row["previous_api_secret"] is None

    missing = herald("apps", "rotate-secret", "999999", env=env)
    assert missing.code == 1
    assert missing.stderr.splitlines()[-1] == (
        "herald: no app with id 999999 (see `herald apps list`)"
    )


@pytest.fixture
async def committing_client(cli_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process on the CLI's database, its writes committed for the CLI to read."""
    engine = make_engine(cli_database, pool_size=2)
    app = create_app(
        Settings(
            database_url=cli_database,
            admin_token="cli-test-admin-token",
            secret_key=TEST_SECRET_KEY,
        )
    )
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        yield client
    await engine.dispose()


async def test_requests_show(cli_database: str, committing_client: httpx.AsyncClient) -> None:
    env = {"HERALD_DATABASE_URL": cli_database, "HERALD_SECRET_KEY": TEST_SECRET_KEY}
    made = await asyncio.to_thread(herald, "apps", "create", "--name", "sender", env=env)
    app = json.loads(made.stdout)
    headers = {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-API-SECRET": app["apiSecret"]}
    sent = await committing_client.post(
        "/v3/notifications", json=send_body("alice", "bob"), headers=headers
    )
    assert sent.status_code == 202, sent.text
    request_id = sent.json()["requestId"]

    shown = await asyncio.to_thread(herald, "requests", "show", str(app["id"]), request_id, env=env)
    assert shown.code == 0, shown.output
    status = json.loads(shown.stdout)
    assert status["requestId"] == request_id
    assert status["status"] == "done"
    assert (status["recipients"], status["delivered"]) == (2, 2)
    # The admin API says the same.
    admin = await committing_client.get(
        f"/admin/apps/{app['id']}/requests/{request_id}",
        headers={"Authorization": "Bearer cli-test-admin-token"},
    )
    assert admin.json() == status

    # Another app's id does not reveal it.
    other = await asyncio.to_thread(herald, "requests", "show", "999999", request_id, env=env)
    assert other.code == 1
    assert other.stderr.splitlines()[-1] == f"herald: app 999999 has no request {request_id}"
