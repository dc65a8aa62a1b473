"""The per-process app cache: used, and forgotten on every change, in this process and others."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apps import service as apps_service
from app.apps.cache import AppCache
from app.auth.dependencies import Credentials, authenticate
from app.errors import Unauthorized
from tests.conftest import ADMIN_TOKEN
from tests.factories import TEST_KEYRING, Creds, make_app
from tests.live import running_server
from tests.queue.support import wait_for

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _creds(api_key: str, api_secret: str) -> Credentials:
    return Credentials(
        api_key=api_key, api_secret=api_secret, user_id=None, signature=None, token=None
    )


async def _queries(
    engine: AsyncEngine, session: AsyncSession, creds: Credentials, apps: AppCache
) -> int:
    """Authenticate once, as a request would (a session of its own); return the app lookups."""
    seen: list[str] = []

    def hook(*args: object) -> None:
        if "FROM apps" in str(args[2]):  # not the savepoints of the test's transaction
            seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", hook)
    try:
        await _auth(session, creds, apps)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", hook)
    return len(seen)


async def _auth(session: AsyncSession, creds: Credentials, apps: AppCache) -> int:
    async with session.info["maker"]() as own:
        app_id: int = (await authenticate(own, creds, apps.keyring, apps=apps)).app.id
        return app_id


async def test_a_hit_skips_the_query_and_a_rotation_is_forgotten_at_once(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    app, creds = await make_app(session, name="cached")
    await session.flush()
    apps = AppCache(TEST_KEYRING)
    apps.listening(True)
    old = _creds(creds.api_key, creds.api_secret)
    assert await _queries(engine, session, old, apps) == 1
    assert await _queries(engine, session, old, apps) == 0  # served from the cache

    # No grace: the old secret must stop working at once, also through the cache.
    rotated = await apps_service.rotate_secret(session, TEST_KEYRING, app=app, grace=timedelta(0))
    with pytest.raises(Unauthorized):
        await _auth(session, old, apps)
    new = _creds(creds.api_key, rotated.api_secret)
    assert await _auth(session, new, apps) == app.id
    assert await _queries(engine, session, new, apps) == 0

    await apps_service.delete(session, app=app)
    with pytest.raises(Unauthorized):
        await _auth(session, new, apps)


async def test_off_while_not_listening_and_a_stale_read_is_not_stored(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    _, creds = await make_app(session, name="cold")
    await session.flush()
    apps = AppCache(TEST_KEYRING)
    c = _creds(creds.api_key, creds.api_secret)
    assert await _queries(engine, session, c, apps) == 1
    assert await _queries(engine, session, c, apps) == 1  # not listening: no cache
    apps.listening(True)
    epoch = apps.epoch()
    apps.forget(creds.api_key)  # a change lands while a lookup is in flight
    async with session.info["maker"]() as own:
        found = (await authenticate(own, c, TEST_KEYRING)).app
    apps.put(creds.api_key, found, epoch)
    assert apps.get(creds.api_key) is None
    apps.listening(False)
    assert apps.get(creds.api_key) is None


# -- real processes: the change reaches another replica's cache ----------------------------


@pytest.fixture(scope="module")
def second_server(live_database_url: str) -> Iterator[str]:
    with running_server(live_database_url, admin_token=ADMIN_TOKEN) as base:
        yield base


async def _status(base: str, creds: Creds, secret: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get(
            "/v3/topics",
            headers={"X-ENGAGESPOT-API-KEY": creds.api_key, "X-ENGAGESPOT-API-SECRET": secret},
        )
    return response.status_code


async def _refused(base: str, creds: Creds, secret: str) -> None:
    async def probe() -> bool | None:
        return True if await _status(base, creds, secret) == 401 else None

    await wait_for(probe, within=5, what=f"{base} to refuse the secret")


async def test_a_change_on_one_replica_or_in_sql_reaches_the_others(
    live_server: str, second_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    old = live_app.api_secret
    for base in (live_server, second_server):
        assert await _status(base, live_app, old) == 200

    # The cache is really in use: a change that sends no notification goes unnoticed.
    async with live_engine.begin() as conn:
        # Triggers off for this transaction only (and no DDL, which would invalidate the
        # servers' prepared statements).
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(
            text("UPDATE apps SET api_secret = 'unnoticed-secret-0123456789' WHERE id = :id"),
            {"id": live_app.id},
        )
    assert await _status(second_server, live_app, old) == 200
    # Plain SQL, with the trigger on: every process forgets it.
    async with live_engine.begin() as conn:
        await conn.execute(
            text("UPDATE apps SET api_secret = 'sql-secret-0123456789' WHERE id = :id"),
            {"id": live_app.id},
        )
    for base in (live_server, second_server):
        await _refused(base, live_app, old)
        assert await _status(base, live_app, "sql-secret-0123456789") == 200

    # Rotation through one replica's admin API: refused there at once, and on the other.
    async with httpx.AsyncClient(base_url=live_server, timeout=10) as client:
        # graceSeconds=0: the old secret ends at once (the default grace keeps it a day).
        rotated = await client.post(
            f"/admin/apps/{live_app.id}/rotate-secret?graceSeconds=0", headers=ADMIN
        )
    assert rotated.status_code == 200, rotated.text
    assert await _status(live_server, live_app, "sql-secret-0123456789") == 401
    await _refused(second_server, live_app, "sql-secret-0123456789")
    secret = rotated.json()["apiSecret"]
    assert await _status(second_server, live_app, secret) == 200

    async with httpx.AsyncClient(base_url=second_server, timeout=10) as client:
        deleted = await client.delete(f"/admin/apps/{live_app.id}", headers=ADMIN)
    assert deleted.status_code == 204, deleted.text
    assert await _status(second_server, live_app, secret) == 401
    await _refused(live_server, live_app, secret)
    await asyncio.sleep(0)
