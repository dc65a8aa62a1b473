"""App API secrets and VAPID private keys are sealed at rest: a database from before sealing
still authenticates with its old secrets after the upgrade, and then holds no plaintext; a
wrong or missing HERALD_SECRET_KEY is one line and exit 78 at start.

Runs on scratch databases of its own, with real `herald` processes."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import keys
from app.apps import service as apps_service
from app.keyring import from_secret
from app.runtime import _seal_app_secrets, alembic_config, migrate
from tests import db
from tests.conftest import ADMIN_TOKEN
from tests.factories import TEST_KEYRING, TEST_SECRET_KEY, make_app, send_body
from tests.live import running_server
from tests.ops.support import herald, scratch_dir

EX_CONFIG = 78
RAW = "SELECT api_key, api_secret, previous_api_secret, vapid_private_key FROM apps ORDER BY id"


@pytest.fixture
def before_sealing(server_url: str) -> Iterator[str]:
    """A scratch database at 0013 (before sealing) holding one app with plaintext secrets."""
    name = f"herald_test_sealing_{os.getpid()}"
    url = asyncio.run(db.recreate(server_url, name))
    command.upgrade(alembic_config(url), "0013_webpush")
    yield url
    asyncio.run(db.drop(server_url, name))


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.plain(url))
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _plaintext_app(url: str, *, api_key: str, current: str, previous: str) -> str:
    public, private = keys.new_vapid_pair()
    conn = await asyncpg.connect(db.plain(url))
    try:
        await conn.execute(
            "INSERT INTO apps (name, api_key, api_secret, previous_api_secret,"
            " previous_secret_expires_at, vapid_public_key, vapid_private_key, hmac_enabled)"
            " VALUES ('old', $1, $2, $3, $4, $5, $6, true)",
            api_key,
            current,
            previous,
            datetime.now(UTC) + timedelta(days=1),
            public,
            private,
        )
    finally:
        await conn.close()
    return private


def _signature(secret: str, user: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), user.encode(), hashlib.sha256).digest()
    ).decode()


def test_an_upgraded_database_keeps_its_secrets_and_stores_none_in_plaintext(
    before_sealing: str,
) -> None:
    url = before_sealing
    api_key, current, previous = (secrets.token_urlsafe(n) for n in (16, 36, 36))
    private = asyncio.run(_plaintext_app(url, api_key=api_key, current=current, previous=previous))
    migrate(url)

    # The server seals the row at start (bench.server.herald runs it with TEST_SECRET_KEY).
    with (
        running_server(url, admin_token=ADMIN_TOKEN) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for secret in (current, previous):  # the old secret, and the one in its grace
            headers = {"X-ENGAGESPOT-API-KEY": api_key, "X-ENGAGESPOT-API-SECRET": secret}
            r = client.post("/v3/notifications", json=send_body("alice"), headers=headers)
            assert r.status_code == 202, r.text
        wrong = {"X-ENGAGESPOT-API-KEY": api_key, "X-ENGAGESPOT-API-SECRET": "v1:" + current}
        assert (
            client.post("/v3/notifications", json=send_body("a"), headers=wrong).status_code == 401
        )
        user = {
            "X-ENGAGESPOT-API-KEY": api_key,
            "X-ENGAGESPOT-USER-ID": "alice",
            "X-ENGAGESPOT-USER-SIGNATURE": _signature(current, "alice"),
        }
        assert client.get("/v3/notifications", headers=user).status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        shown = client.get("/admin/apps", headers=admin).json()
        assert [a["apiSecret"] for a in shown] == [current]

    (row,) = asyncio.run(_fetch(url, RAW))
    for column, plain in (
        ("api_secret", current),
        ("previous_api_secret", previous),
        ("vapid_private_key", private),
    ):
        assert row[column].startswith("v1:"), column
        assert plain not in row[column], column
    # Opened with the key, they are the secrets from before.
    ring = from_secret(TEST_SECRET_KEY)
    assert ring.open(row["api_secret"], context=f"herald app {api_key}") == current


def test_replicas_sealing_together_seal_each_row_once(before_sealing: str) -> None:
    url = before_sealing
    made = [
        (secrets.token_urlsafe(16), secrets.token_urlsafe(36), secrets.token_urlsafe(36))
        for _ in range(3)
    ]
    for api_key, current, previous in made:
        asyncio.run(_plaintext_app(url, api_key=api_key, current=current, previous=previous))
    migrate(url)

    async def together() -> list[int]:
        return list(await asyncio.gather(*(_seal_app_secrets(url, TEST_KEYRING) for _ in range(3))))

    assert sorted(asyncio.run(together())) == [0, 0, 3]
    rows = asyncio.run(_fetch(url, RAW))
    for (api_key, current, previous), row in zip(made, rows, strict=True):
        context = f"herald app {api_key}"
        assert TEST_KEYRING.open(row["api_secret"], context=context) == current
        assert TEST_KEYRING.open(row["previous_api_secret"], context=context) == previous


def test_a_wrong_or_missing_key_is_one_line_at_start(before_sealing: str) -> None:
    url = before_sealing
    where = {"HERALD_DATABASE_URL": url, "HERALD_DATA_DIR": str(scratch_dir())}
    # Refused before the migrations: a start without the key leaves the schema as it was.
    refused = herald("serve", env=where)
    assert refused.code == EX_CONFIG, refused.output
    revision = asyncio.run(_fetch(url, "SELECT version_num FROM alembic_version"))
    assert [r["version_num"] for r in revision] == ["0013_webpush"]
    migrate(url)
    made = herald(
        "apps", "create", "--name", "a", env={**where, "HERALD_SECRET_KEY": TEST_SECRET_KEY}
    )
    assert made.code == 0, made.output
    shown = made.stdout.strip()

    other = "another-secret-key-" + secrets.token_hex(16)
    for command_line in (("serve",), ("worker",), ("apps", "list")):
        run = herald(*command_line, env={**where, "HERALD_SECRET_KEY": other})
        assert run.code == EX_CONFIG, run.output
        assert "Traceback" not in run.output
        assert run.stderr.splitlines() == [
            "herald: HERALD_SECRET_KEY: does not open the app secrets stored in the database "
            "(they were sealed with another key: start with that one)"
        ], run.output
        assert other not in run.output
        assert TEST_SECRET_KEY not in run.output

    run = herald("serve", env=where)
    assert run.code == EX_CONFIG, run.output
    assert run.stderr.splitlines() == [
        "herald: HERALD_SECRET_KEY: required with HERALD_DATABASE_URL (at least 32 characters, "
        "the same on every Herald process): app API secrets are encrypted with it"
    ], run.output
    # The right key still opens them: nothing was changed by the refused starts.
    listed = herald("apps", "list", "--json", env={**where, "HERALD_SECRET_KEY": TEST_SECRET_KEY})
    assert listed.code == 0, listed.output
    assert json.loads(shown)["apiKey"] in listed.stdout


async def test_new_and_rotated_secrets_are_sealed(session: AsyncSession) -> None:
    app, creds = await make_app(session, name="sealed")
    rotated = await apps_service.rotate_secret(
        session, TEST_KEYRING, app=app, grace=timedelta(hours=1)
    )
    row = (
        await session.execute(
            text(
                "SELECT api_secret, previous_api_secret, vapid_private_key FROM apps WHERE id = :id"
            ),
            {"id": app.id},
        )
    ).one()
    assert all(value.startswith("v1:") for value in row)
    assert creds.api_secret not in row.previous_api_secret
    assert rotated.api_secret not in row.api_secret
    assert rotated.previous_api_secret == creds.api_secret
    assert "PRIVATE KEY" not in row.vapid_private_key
