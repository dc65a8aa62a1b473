"""/v3/categories (and the /v3/notifications/categories alias used by @engagespot/node)."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category
from app.errors import NO_AUTH
from app.inbox.models import Notification
from app.preferences.models import Preference
from tests.factories import Creds, send_body
from tests.factories import error_message as _error


async def _create(
    client: httpx.AsyncClient, creds: Creds, identifier: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v3/categories", json={"identifier": identifier, **extra}, headers=creds.backend()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _identifiers(session: AsyncSession, app_id: int) -> list[str]:
    rows = await session.scalars(
        select(Category.identifier).where(Category.app_id == app_id).order_by(Category.id)
    )
    return list(rows)


async def test_list_is_empty_for_a_new_app(client: httpx.AsyncClient, creds: Creds) -> None:
    response = await client.get("/v3/categories", headers=creds.user("alice"))
    assert response.status_code == 200
    assert response.json() == []


async def test_create_category(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    body = await _create(client, creds, "comment_replies", name="Comment Replies")
    assert isinstance(body["id"], int)
    assert body["identifier"] == "comment_replies"
    assert body["name"] == "Comment Replies"
    assert body["hideInInApp"] is False
    assert body["hideInPreferenceManager"] is False
    assert body["createdAt"].endswith("Z")
    assert body["updatedAt"].endswith("Z")
    row = await session.get(Category, body["id"])
    assert row is not None
    assert (row.app_id, row.identifier, row.name) == (
        creds.id,
        "comment_replies",
        "Comment Replies",
    )


async def test_create_category_defaults_and_flags(client: httpx.AsyncClient, creds: Creds) -> None:
    plain = await _create(client, creds, "plain")
    assert plain["name"] == "plain"
    hidden = await _create(
        client, creds, "hidden", name="Hidden", hideInInApp=True, hideInPreferenceManager=True
    )
    assert (hidden["hideInInApp"], hidden["hideInPreferenceManager"]) == (True, True)


async def test_list_categories_in_creation_order_for_users_and_backends(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    created = [await _create(client, creds, i) for i in ("b", "a", "c")]
    await _create(client, other, "theirs")
    for headers in (creds.user("alice"), creds.backend(), creds.signed("alice")):
        response = await client.get("/v3/categories", headers=headers)
        assert response.status_code == 200
        assert response.json() == created
    theirs = await client.get("/v3/categories", headers=other.user("alice"))
    assert [c["identifier"] for c in theirs.json()] == ["theirs"]


async def test_duplicate_identifier_is_409(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    await _create(client, creds, "comment", name="Comment")
    response = await client.post(
        "/v3/categories", json={"identifier": "comment", "name": "Again"}, headers=creds.backend()
    )
    assert _error(response, 409) == "A category with identifier 'comment' already exists"
    rows = list(await session.scalars(select(Category).where(Category.app_id == creds.id)))
    assert [(c.identifier, c.name) for c in rows] == [("comment", "Comment")]
    # Identifiers are per app.
    assert (await _create(client, other, "comment"))["identifier"] == "comment"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, ["identifier is required"]),
        ({"name": "Only a name"}, ["identifier is required"]),
        ({"identifier": ""}, ["identifier should not be empty"]),
        (
            {"identifier": "x" * 256},
            ["identifier must be shorter than or equal to 255 characters"],
        ),
        ({"identifier": 7}, ["identifier must be a string"]),
        ({"identifier": "ok", "name": ""}, ["name should not be empty"]),
        ({"identifier": "ok", "hideInInApp": "maybe"}, ["hideInInApp must be a boolean"]),
        # JSON has booleans: strings and numbers that pydantic would coerce are refused.
        ({"identifier": "ok", "hideInInApp": "true"}, ["hideInInApp must be a boolean"]),
        (
            {"identifier": "ok", "hideInPreferenceManager": 1},
            ["hideInPreferenceManager must be a boolean"],
        ),
    ],
)
async def test_create_category_validation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    body: dict[str, Any],
    message: list[str],
) -> None:
    response = await client.post("/v3/categories", json=body, headers=creds.backend())
    assert _error(response, 400) == message
    assert await _identifiers(session, creds.id) == []


@pytest.mark.parametrize("identifier", ["has space", "slash/y", "émoji", "semi;colon"])
async def test_create_category_identifier_pattern(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, identifier: str
) -> None:
    response = await client.post(
        "/v3/categories", json={"identifier": identifier}, headers=creds.backend()
    )
    assert _error(response, 400) == [
        "identifier must match ^[A-Za-z0-9_.:\\-]+$ regular expression"
    ]
    assert await _identifiers(session, creds.id) == []


async def test_create_category_needs_the_app_secret(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    body = {"identifier": "c"}
    assert _error(await client.post("/v3/categories", json=body), 401) == NO_AUTH
    as_user = await client.post("/v3/categories", json=body, headers=creds.user("alice"))
    _error(as_user, 401)
    assert await _identifiers(session, creds.id) == []


async def test_list_categories_needs_auth(client: httpx.AsyncClient) -> None:
    assert _error(await client.get("/v3/categories"), 401) == NO_AUTH


async def test_node_sdk_alias_creates_and_deletes(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    created = await client.post(
        "/v3/notifications/categories",
        json={"identifier": "via_node", "name": "Via Node"},
        headers=creds.backend(),
    )
    assert created.status_code == 200
    assert created.json()["name"] == "Via Node"
    assert await _identifiers(session, creds.id) == ["via_node"]
    deleted = await client.delete(
        f"/v3/notifications/categories/{created.json()['id']}", headers=creds.backend()
    )
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "Category deleted"}
    assert await _identifiers(session, creds.id) == []


async def test_update_category(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    created = await _create(client, creds, "comment", name="Comment")
    path = f"/v3/categories/{created['id']}"
    renamed = await client.patch(path, json={"name": "Comments"}, headers=creds.backend())
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Comments"
    assert renamed.json()["identifier"] == "comment"
    assert renamed.json()["hideInInApp"] is False
    assert renamed.json()["createdAt"] == created["createdAt"]
    hidden = await client.patch(path, json={"hideInInApp": True}, headers=creds.backend())
    assert hidden.json()["name"] == "Comments"
    assert hidden.json()["hideInInApp"] is True
    assert hidden.json()["hideInPreferenceManager"] is False
    listed = await client.get("/v3/categories", headers=creds.user("alice"))
    assert listed.json() == [hidden.json()]
    # The identifier is not renamable.
    ignored = await client.patch(path, json={"identifier": "other"}, headers=creds.backend())
    assert ignored.json()["identifier"] == "comment"


async def test_update_category_refusals(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    created = await _create(client, creds, "comment", name="Comment")
    path = f"/v3/categories/{created['id']}"
    assert _error(await client.patch(path, json={"name": "x"}, headers=other.backend()), 404) == (
        "Category not found"
    )
    _error(await client.patch(path, json={"name": "x"}, headers=creds.user("alice")), 401)
    _error(await client.patch(path, json={"name": ""}, headers=creds.backend()), 400)
    missing = await client.patch("/v3/categories/999999", json={}, headers=creds.backend())
    assert _error(missing, 404) == "Category not found"
    listed = await client.get("/v3/categories", headers=creds.backend())
    assert [c["name"] for c in listed.json()] == ["Comment"]


async def test_delete_category_keeps_its_notifications_uncategorised(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    created = await _create(client, creds, "promo", name="Promo")
    sent = await client.post(
        "/v3/notifications", json=send_body("alice", category="promo"), headers=creds.backend()
    )
    assert sent.status_code == 202
    prefs = await client.patch(
        "/v3/preferences",
        json={
            "preference": [
                {"categoryId": created["id"], "channels": [{"channel": "email", "enabled": False}]}
            ]
        },
        headers=creds.user("alice"),
    )
    assert prefs.status_code == 200

    response = await client.delete(f"/v3/categories/{created['id']}", headers=creds.backend())
    assert response.status_code == 200
    assert response.json() == {"message": "Category deleted"}

    assert (await client.get("/v3/categories", headers=creds.backend())).json() == []
    page = (await client.get("/v3/notifications", headers=creds.user("alice"))).json()
    assert page["pagination"]["totalCount"] == 1
    assert page["data"][0]["category"] is None
    count = await session.scalar(
        select(func.count()).select_from(Preference).where(Preference.category_id == created["id"])
    )
    assert count == 0
    assert (await client.get("/v3/preferences", headers=creds.user("alice"))).json() == []
    assert await session.scalar(select(func.count()).select_from(Notification)) == 1
    again = await client.delete(f"/v3/categories/{created['id']}", headers=creds.backend())
    assert _error(again, 404) == "Category not found"


async def test_delete_category_refusals(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    created = await _create(client, creds, "promo")
    path = f"/v3/categories/{created['id']}"
    assert _error(await client.delete(path, headers=other.backend()), 404) == "Category not found"
    assert _error(
        await client.delete(
            f"/v3/notifications/categories/{created['id']}", headers=other.backend()
        ),
        404,
    ) == ("Category not found")
    _error(await client.delete(path, headers=creds.user("alice")), 401)
    assert _error(await client.delete(path), 401) == NO_AUTH
    for bad in ("0", "-1", str(2**63), "999999"):
        _error(await client.delete(f"/v3/categories/{bad}", headers=creds.backend()), 404)
    _error(await client.delete("/v3/categories/abc", headers=creds.backend()), 400)
    assert await _identifiers(session, creds.id) == ["promo"]
