import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from tests import db
from tests.factories import TEST_SECRET_KEY as TEST_SECRET_KEY
from tests.factories import Creds, make_app
from tests.live import running_server

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with db.server_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with db.migrated(server_url) as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        data_dir=db.scratch_dir(),
        cors_origins=["*"],
        secret_key=TEST_SECRET_KEY,
    )


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session in an outer transaction that is rolled back after the test.

    The app under test shares this connection; its commits only release savepoints."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        maker = async_sessionmaker(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        async with maker() as session:
            session.info["maker"] = maker
            yield session
        await outer.rollback()


@pytest.fixture(scope="session")
def shared_app(settings: Settings) -> FastAPI:
    # FastAPI analyses each route on its first request (~150 ms): one app for the session
    # saves that per test. Tests that need other settings build their own with create_app.
    return create_app(settings)


@pytest.fixture
def app(
    shared_app: FastAPI, settings: Settings, session: AsyncSession, engine: AsyncEngine
) -> FastAPI:
    # Per-test state: a test may swap the settings (limits) for its own run.
    shared_app.state.settings = settings
    shared_app.state.sessionmaker = session.info["maker"]
    shared_app.state.engine = engine
    return shared_app


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that calls `app` in this process, with no socket in between."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
        yield c


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def creds(session: AsyncSession) -> Creds:
    _, c = await make_app(session)
    await session.flush()
    return c


@pytest.fixture
async def other(session: AsyncSession) -> Creds:
    """A second tenant, for cross-app attempts."""
    _, c = await make_app(session, name="other")
    await session.flush()
    return c


def pytest_report_header() -> str:
    where = os.environ.get("HERALD_TEST_DATABASE_URL") or "embedded PostgreSQL (.herald-test/)"
    return f"herald test database server: {where}"


@pytest.fixture(scope="session")
def live_database_url(server_url: str) -> Iterator[str]:
    """A second database for real Herald processes, whose writes commit.

    Kept apart from `database_url`, where every test's writes roll back, so counts there
    only ever see the test's own rows."""
    name = f"herald_test_live_{os.getpid()}"
    with db.migrated(server_url, name) as url:
        yield url


@pytest.fixture(scope="session")
async def live_engine(live_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the live servers' database, to check what they committed."""
    engine = make_engine(live_database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def live_server(live_database_url: str) -> Iterator[str]:
    """A real `herald serve` process on the live database; yields its base URL (no /v3)."""
    with running_server(live_database_url, admin_token=ADMIN_TOKEN) as base:
        yield base


@pytest.fixture
def live_app(live_server: str) -> Creds:
    """A fresh app on the live server (tenant isolation stands in for rollback there)."""
    response = httpx.post(
        f"{live_server}/admin/apps",
        json={"name": "live-" + secrets.token_hex(4)},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Creds(body["id"], body["apiKey"], body["apiSecret"])
