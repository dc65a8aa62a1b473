"""Secret rotation: the old secret keeps working for HERALD_SECRET_GRACE, then stops."""

from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import repository as apps_repository
from app.config import Settings
from app.kit.timefmt import utcnow
from tests.factories import Creds, send_body
from tests.factories import error_message as assert_error


async def rotate(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, query: str = ""
) -> tuple[Creds, dict[str, object]]:
    r = await client.post(f"/admin/apps/{creds.id}/rotate-secret{query}", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    return Creds(creds.id, creds.api_key, body["apiSecret"]), body


async def sends(client: httpx.AsyncClient, creds: Creds) -> int:
    r = await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend())
    return r.status_code


async def test_old_secret_works_within_the_grace(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    before = utcnow()
    new, body = await rotate(client, admin, creds)
    assert await sends(client, creds) == 202
    assert await sends(client, new) == 202
    # The default grace is 24 h, and the answer says when it ends.
    expires = body["previousSecretExpiresAt"]
    assert isinstance(expires, str)
    ends = datetime.fromisoformat(expires)
    assert abs(ends - (before + timedelta(hours=24))) < timedelta(minutes=1)
    listed = (await client.get(f"/admin/apps/{creds.id}", headers=admin)).json()
    assert listed["previousSecretExpiresAt"] == expires


async def test_old_secret_fails_after_the_grace(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, session: AsyncSession
) -> None:
    new, _ = await rotate(client, admin, creds)
    assert await sends(client, creds) == 202
    app = await apps_repository.by_id(session, creds.id)
    assert app is not None
    app.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    await session.flush()
    r = await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend())
    assert assert_error(r, 401) == "Invalid API secret"
    assert await sends(client, new) == 202


async def test_zero_grace_ends_the_old_secret_at_once(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    app.state.settings = settings.model_copy(update={"secret_grace": timedelta(0)})
    new, body = await rotate(client, admin, creds)
    assert body["previousSecretExpiresAt"] is None
    assert_error(
        await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend()),
        401,
    )
    assert await sends(client, new) == 202


@pytest.mark.parametrize(
    ("query", "old_works"), [("?graceSeconds=0", False), ("?graceSeconds=60", True)]
)
async def test_grace_per_rotation(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, query: str, old_works: bool
) -> None:
    new, _ = await rotate(client, admin, creds, query)
    assert await sends(client, creds) == (202 if old_works else 401)
    assert await sends(client, new) == 202


async def test_a_second_rotation_ends_the_first_secret(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    second, _ = await rotate(client, admin, creds)
    third, _ = await rotate(client, admin, second)
    assert await sends(client, creds) == 401
    assert await sends(client, second) == 202
    assert await sends(client, third) == 202


async def test_a_bad_grace_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    r = await client.post(f"/admin/apps/{creds.id}/rotate-secret?graceSeconds=-1", headers=admin)
    assert_error(r, 400)
    assert await sends(client, creds) == 202


async def test_the_old_secret_signs_no_user(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    # The grace covers the backend's key + secret calls only; HMAC user signatures follow
    # the current secret (tests/auth/test_modes.py::test_hmac_follows_secret_rotation).
    await rotate(client, admin, creds)
    r = await client.patch(f"/admin/apps/{creds.id}", json={"hmacEnabled": True}, headers=admin)
    assert r.status_code == 200
    assert_error(await client.get("/v3/notifications", headers=creds.signed("alice")), 401)
