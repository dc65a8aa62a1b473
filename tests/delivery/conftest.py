"""Channel tests: the API in-process on a database of its own (its writes commit), a real
`Worker` in the test's event loop with tiny retry ladders, and real peers on loopback."""

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.worker import Worker
from tests import db
from tests.conftest import ADMIN_TOKEN, TEST_SECRET_KEY, asgi_client
from tests.delivery.peers import HttpPeer
from tests.factories import Creds
from tests.queue.support import wait_for

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA) -> Iterator[Path]:
    """The test CA as SSL_CERT_FILE: Herald's TLS must trust it the way it trusts a private CA."""
    path = db.scratch_dir() / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(path))
        yield path


@pytest.fixture(scope="session")
def channel_database(server_url: str) -> Iterator[str]:
    name = f"herald_test_channels_{os.getpid()}"
    with db.migrated(server_url, name) as url:
        yield url


@pytest.fixture(scope="session")
async def channel_engine(channel_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(channel_database, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def http_peer() -> Iterator[HttpPeer]:
    peer = HttpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def channel_settings(channel_database: str, http_peer: HttpPeer, ca_file: Path) -> Settings:
    return Settings(
        database_url=channel_database,
        admin_token=ADMIN_TOKEN,
        data_dir=db.scratch_dir(),
        secret_key=TEST_SECRET_KEY,
        allow_private_targets=True,
        delivery_retry_delays=[0.2, 0.4, 0.8],
        delivery_failover_after=2,
        delivery_http_timeout=5,
        delivery_smtp_timeout=5,
        sendgrid_base_url=http_peer.url("/sendgrid"),
        mailgun_base_url=http_peer.url("/mailgun"),
        postmark_base_url=http_peer.url("/postmark"),
    )


def api_app(settings: Settings, engine: AsyncEngine) -> FastAPI:
    """Herald's API with `settings`, on the channel tests' engine."""
    app = create_app(settings, admin_token=ADMIN_TOKEN)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    return app


@pytest.fixture(scope="session")
def channel_app(channel_settings: Settings, channel_engine: AsyncEngine) -> FastAPI:
    return api_app(channel_settings, channel_engine)


@pytest.fixture
async def api(channel_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(channel_app) as client:
        yield client


@pytest.fixture
async def worker(
    channel_database: str, channel_engine: AsyncEngine, channel_settings: Settings
) -> AsyncIterator[Callable[..., Worker]]:
    """Start a queue worker in this event loop (settings overridable); stopped afterwards,
    and the jobs it left are dropped so the next test starts from an empty queue."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(**overrides: Any) -> Worker:
        settings = channel_settings.model_copy(update=overrides)
        w = Worker(
            channel_database.replace("+asyncpg", "", 1),
            make_sessionmaker(channel_engine),
            settings=settings,
            heartbeat=timedelta(seconds=2),
        )
        started.append((w, asyncio.create_task(w.run())))
        return w

    yield start
    for w, task in started:
        w.stop()
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()
    async with channel_engine.begin() as conn:
        await conn.execute(text("DELETE FROM pgqueuer"))


async def new_app(api: httpx.AsyncClient, channels: list[str]) -> Creds:
    created = await api.post(
        "/admin/apps", json={"name": "ch-" + secrets.token_hex(3)}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    body = created.json()
    patched = await api.patch(
        f"/admin/apps/{body['id']}", json={"channels": channels}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    return Creds(body["id"], body["apiKey"], body["apiSecret"])


async def add_provider(
    api: httpx.AsyncClient, creds: Creds, channel: str, body: dict[str, Any]
) -> dict[str, Any]:
    created = await api.post(
        f"/admin/apps/{creds.id}/channels/{channel}/providers", json=body, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def deliveries(api: httpx.AsyncClient, creds: Creds, request_id: str) -> list[dict[str, Any]]:
    response = await api.get(
        f"/admin/apps/{creds.id}/requests/{request_id}/deliveries", headers=ADMIN
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def settled(
    api: httpx.AsyncClient, creds: Creds, request_id: str, *, within: float = 20, count: int = 1
) -> list[dict[str, Any]]:
    """The send's deliveries once `count` of them are final (sent, failed, skipped, unknown)."""

    async def probe() -> list[dict[str, Any]] | None:
        found = await deliveries(api, creds, request_id)
        final = [d for d in found if d["status"] in ("sent", "failed", "skipped", "unknown")]
        return found if len(final) >= count else None

    return await wait_for(probe, within=within, what=f"{count} final deliveries of {request_id}")


async def send(api: httpx.AsyncClient, creds: Creds, body: dict[str, Any]) -> str:
    response = await api.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


async def inbox_titles(api: httpx.AsyncClient, creds: Creds, user: str) -> list[str]:
    response = await api.get("/v3/notifications", headers=creds.user(user))
    assert response.status_code == 200, response.text
    return [n["title"] for n in response.json()["data"]]
