"""/v3/users (backend) and /v3/profile (the user's own profile)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.devices.models import Device
from app.errors import NO_AUTH
from app.inbox.models import Notification
from app.preferences.models import Preference
from app.users.models import User
from tests.factories import Creds, send_body
from tests.factories import error_message as _error

IDENTIFIER_KEY = "The profile cannot contain the key `identifier`"


async def _users(session: AsyncSession, app_id: int) -> dict[str, dict[str, Any]]:
    rows = await session.execute(
        select(User.identifier, User.profile).where(User.app_id == app_id).order_by(User.id)
    )
    return {identifier: profile for identifier, profile in rows}


async def _count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _recent(stamp: str) -> bool:
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return datetime.now(UTC) - timedelta(minutes=1) < when <= datetime.now(UTC)


# -- POST /v3/users ------------------------------------------------------------------------------


async def test_create_user(client: httpx.AsyncClient, session: AsyncSession, creds: Creds) -> None:
    response = await client.post(
        "/v3/users",
        json={"identifier": "u1", "profile": {"name": "Ann", "tags": ["a"]}},
        headers=creds.backend(),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["identifier"] == "u1"
    assert body["profile"] == {"name": "Ann", "tags": ["a"]}
    assert _recent(body["createdAt"])
    assert _recent(body["updatedAt"])
    assert await _users(session, creds.id) == {"u1": {"name": "Ann", "tags": ["a"]}}


async def test_create_existing_user_merges_its_profile(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await client.post(
        "/v3/users", json={"identifier": "u1", "profile": {"a": 1, "b": 1}}, headers=creds.backend()
    )
    response = await client.post(
        "/v3/users", json={"identifier": "u1", "profile": {"b": 2, "c": 3}}, headers=creds.backend()
    )
    assert response.status_code == 200
    assert response.json()["profile"] == {"a": 1, "b": 2, "c": 3}
    assert await _users(session, creds.id) == {"u1": {"a": 1, "b": 2, "c": 3}}


async def test_create_user_without_profile_and_with_an_email_identifier(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    plain = await client.post("/v3/users", json={"identifier": "u1"}, headers=creds.backend())
    assert plain.json()["profile"] == {}
    email = await client.post(
        "/v3/users", json={"identifier": "ann@example.com"}, headers=creds.backend()
    )
    assert email.json()["profile"] == {"email": "ann@example.com"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, ["identifier is required"]),
        ({"identifier": ""}, 400, ["identifier should not be empty"]),
        (
            {"identifier": "x" * 256},
            400,
            ["identifier must be shorter than or equal to 255 characters"],
        ),
        ({"identifier": 5}, 400, ["identifier must be a string"]),
        ({"identifier": "u1", "profile": [1]}, 400, ["profile must be an object"]),
        ({"identifier": "u1", "profile": {"identifier": "u2"}}, 422, IDENTIFIER_KEY),
    ],
)
async def test_create_user_refusals(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    body: dict[str, Any],
    status: int,
    message: Any,
) -> None:
    response = await client.post("/v3/users", json=body, headers=creds.backend())
    assert _error(response, status) == message
    assert await _count(session, User, User.app_id == creds.id) == 0


# -- PUT /v3/users/{identifier} ------------------------------------------------------------------


async def test_put_user_creates_then_merges(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    created = await client.put(
        "/v3/users/ben",
        json={"email": "ben@x.com", "phoneNumber": "+15550001", "firstName": "Ben"},
        headers=creds.backend(),
    )
    assert created.status_code == 200
    assert created.json()["identifier"] == "ben"
    assert created.json()["profile"] == {
        "email": "ben@x.com",
        "phoneNumber": "+15550001",
        "firstName": "Ben",
    }
    updated = await client.put(
        "/v3/users/ben", json={"firstName": "Benjamin", "nested": {"a": 1}}, headers=creds.backend()
    )
    assert updated.status_code == 200
    assert updated.json()["profile"] == {
        "email": "ben@x.com",
        "phoneNumber": "+15550001",
        "firstName": "Benjamin",
        "nested": {"a": 1},
    }
    assert updated.json()["createdAt"] == created.json()["createdAt"]
    assert updated.json()["updatedAt"] >= created.json()["updatedAt"]
    assert list(await _users(session, creds.id)) == ["ben"]


async def test_put_user_with_empty_or_no_body(client: httpx.AsyncClient, creds: Creds) -> None:
    empty = await client.put("/v3/users/u1", json={}, headers=creds.backend())
    assert empty.status_code == 200
    assert empty.json()["profile"] == {}
    none = await client.put("/v3/users/u2", headers=creds.backend())
    assert none.status_code == 200
    assert none.json()["identifier"] == "u2"


async def test_put_user_with_identifier_in_body_is_422(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.put(
        "/v3/users/u1", json={"identifier": "u1", "name": "x"}, headers=creds.backend()
    )
    assert _error(response, 422) == IDENTIFIER_KEY
    assert await _count(session, User, User.app_id == creds.id) == 0
    # An existing user is left unchanged too.
    await client.put("/v3/users/u1", json={"name": "kept"}, headers=creds.backend())
    response = await client.put(
        "/v3/users/u1", json={"identifier": "other", "name": "lost"}, headers=creds.backend()
    )
    assert response.status_code == 422
    assert await _users(session, creds.id) == {"u1": {"name": "kept"}}


async def test_put_user_refusals(client: httpx.AsyncClient, creds: Creds) -> None:
    assert _error(await client.put("/v3/users/u1", json=[1], headers=creds.backend()), 400) == [
        "request body must be an object"
    ]
    long = await client.put("/v3/users/" + "x" * 256, json={}, headers=creds.backend())
    assert _error(long, 400) == ["identifier must be 1 to 255 characters"]


async def test_put_user_appends_fcm_tokens(client: httpx.AsyncClient, creds: Creds) -> None:
    for token in ("t1", "t2", "t1"):
        response = await client.put(
            "/v3/users/u1", json={"fcm": {"token": token}}, headers=creds.backend()
        )
        assert response.status_code == 200
    assert response.json()["profile"] == {"fcm": {"tokens": ["t1", "t2"]}}


async def test_email_identifier_user_gets_profile_email(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.put(
        "/v3/users/ann@example.com", json={"name": "Ann"}, headers=creds.backend()
    )
    assert response.json()["profile"] == {"email": "ann@example.com", "name": "Ann"}


# -- GET /v3/users/{identifier} ------------------------------------------------------------------


async def test_get_user(client: httpx.AsyncClient, creds: Creds, other: Creds) -> None:
    put = await client.put("/v3/users/u1", json={"name": "Ann"}, headers=creds.backend())
    got = await client.get("/v3/users/u1", headers=creds.backend())
    assert got.status_code == 200
    assert got.json() == put.json()
    assert _error(await client.get("/v3/users/u2", headers=creds.backend()), 404) == (
        "User doesn't exist"
    )
    # Another app does not see it.
    assert _error(await client.get("/v3/users/u1", headers=other.backend()), 404) == (
        "User doesn't exist"
    )


# -- DELETE /v3/users/{identifier} ---------------------------------------------------------------


async def test_delete_user_is_202_then_404(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    backend = creds.backend()
    sent = await client.post("/v3/notifications", json=send_body("u1", "u2"), headers=backend)
    assert sent.status_code == 202
    await client.post("/v3/notifications", json=send_body("u1"), headers=other.backend())
    category = await client.post("/v3/categories", json={"identifier": "c"}, headers=backend)
    prefs = await client.patch(
        "/v3/preferences",
        json={
            "preference": [
                {
                    "categoryId": category.json()["id"],
                    "channels": [{"channel": "email", "enabled": False}],
                }
            ]
        },
        headers=creds.user("u1"),
    )
    assert prefs.status_code == 200
    connect = await client.post(
        "/v3/sdk/connect", headers={**creds.user("u1"), "X-ENGAGESPOT-DEVICE-ID": "dev-1"}
    )
    assert connect.status_code == 200
    u1 = await session.scalar(
        select(User.id).where(User.app_id == creds.id, User.identifier == "u1")
    )

    response = await client.delete("/v3/users/u1", headers=backend)
    assert response.status_code == 202
    assert response.json() == {"message": "User deleted"}

    assert _error(await client.delete("/v3/users/u1", headers=backend), 404) == (
        "User doesn't exist"
    )
    assert _error(await client.get("/v3/users/u1", headers=backend), 404) == "User doesn't exist"
    assert list(await _users(session, creds.id)) == ["u2"]
    # The inbox, preferences and devices go with the user.
    assert await _count(session, Notification, Notification.user_id == u1) == 0
    assert await _count(session, Preference, Preference.user_id == u1) == 0
    assert await _count(session, Device, Device.user_id == u1) == 0
    page = await client.get("/v3/notifications", headers=creds.user("u1"))
    assert page.json()["pagination"]["totalCount"] == 0
    # Others keep theirs.
    assert await _count(session, Notification, Notification.app_id == creds.id) == 1
    other_page = await client.get("/v3/notifications", headers=other.user("u1"))
    assert other_page.json()["pagination"]["totalCount"] == 1


async def test_delete_unknown_user_is_404(client: httpx.AsyncClient, creds: Creds) -> None:
    assert _error(await client.delete("/v3/users/ghost", headers=creds.backend()), 404) == (
        "User doesn't exist"
    )


async def test_delete_another_apps_user_is_404(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    await client.put("/v3/users/u1", json={}, headers=other.backend())
    assert _error(await client.delete("/v3/users/u1", headers=creds.backend()), 404) == (
        "User doesn't exist"
    )
    assert list(await _users(session, other.id)) == ["u1"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v3/users", {"identifier": "u1"}),
        ("PUT", "/v3/users/u1", {}),
        ("GET", "/v3/users/u1", None),
        ("DELETE", "/v3/users/u1", None),
    ],
)
async def test_users_routes_need_the_app_secret(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await client.put("/v3/users/u1", json={"keep": True}, headers=creds.backend())
    bare = await client.request(method, path, json=body)
    assert _error(bare, 401) == NO_AUTH
    as_user = await client.request(method, path, json=body, headers=creds.user("u1"))
    _error(as_user, 401)
    wrong = await client.request(
        method, path, json=body, headers={**creds.backend(), "X-ENGAGESPOT-API-SECRET": "x"}
    )
    _error(wrong, 401)
    assert await _users(session, creds.id) == {"u1": {"keep": True}}


# -- /v3/profile ---------------------------------------------------------------------------------


async def test_get_profile(client: httpx.AsyncClient, creds: Creds) -> None:
    unknown = await client.get("/v3/profile", headers=creds.user("nobody"))
    assert unknown.status_code == 200
    assert unknown.json() == {}
    await client.put("/v3/users/u1", json={"name": "Ann"}, headers=creds.backend())
    assert (await client.get("/v3/profile", headers=creds.user("u1"))).json() == {"name": "Ann"}
    # A backend reads a user's profile by naming them.
    by_backend = await client.get(
        "/v3/profile", headers=creds.backend(), params={"userIdentifier": "u1"}
    )
    assert by_backend.json() == {"name": "Ann"}


async def test_profile_is_per_app_and_per_user(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    await client.put("/v3/profile", json={"name": "Ann"}, headers=creds.user("u1"))
    assert (await client.get("/v3/profile", headers=creds.user("u2"))).json() == {}
    assert (await client.get("/v3/profile", headers=other.user("u1"))).json() == {}


async def test_put_profile_merges(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    first = await client.put(
        "/v3/profile", json={"name": "Jack", "email": "jack@titanic.com"}, headers=creds.user("u1")
    )
    assert first.status_code == 200
    assert first.json() == {"name": "Jack", "email": "jack@titanic.com"}
    second = await client.put("/v3/profile", json={"name": "Rose"}, headers=creds.user("u1"))
    assert second.json() == {"name": "Rose", "email": "jack@titanic.com"}
    assert await _users(session, creds.id) == {"u1": {"name": "Rose", "email": "jack@titanic.com"}}


async def test_put_profile_appends_the_fcm_token_once(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    user = creds.user("u1")
    await client.put("/v3/profile", json={"fcm": {"token": "tok-1"}}, headers=user)
    await client.put("/v3/profile", json={"fcm": {"token": "tok-1"}}, headers=user)
    both = await client.put("/v3/profile", json={"fcm": {"token": "tok-2"}}, headers=user)
    assert both.json() == {"fcm": {"tokens": ["tok-1", "tok-2"]}}
    # Other keys beside `token` are kept; an empty token adds nothing.
    extra = await client.put(
        "/v3/profile", json={"fcm": {"token": "", "topic": "news"}}, headers=user
    )
    assert extra.json() == {"fcm": {"tokens": ["tok-1", "tok-2"], "topic": "news"}}
    # FLUTTER writes `fcm.tokens` outright; that replaces the object.
    replaced = await client.put("/v3/profile", json={"fcm": {"tokens": ["x"]}}, headers=user)
    assert replaced.json() == {"fcm": {"tokens": ["x"]}}


async def test_put_profile_refusals(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await client.put("/v3/profile", json={"name": "Ann"}, headers=creds.user("u1"))
    response = await client.put("/v3/profile", json={"identifier": "x"}, headers=creds.user("u1"))
    assert _error(response, 422) == IDENTIFIER_KEY
    response = await client.put("/v3/profile", json=["x"], headers=creds.user("u1"))
    assert _error(response, 400) == ["request body must be an object"]
    assert await _users(session, creds.id) == {"u1": {"name": "Ann"}}


async def test_patch_profile_with_json_patch(client: httpx.AsyncClient, creds: Creds) -> None:
    user = creds.user("u1")
    await client.put(
        "/v3/profile",
        json={"name": "Jack", "email": "old@x.com", "tags": ["a"], "drop": 1},
        headers=user,
    )
    response = await client.patch(
        "/v3/profile",
        json=[
            {"op": "replace", "path": "/email", "value": "jack@titanic.com"},
            {"op": "add", "path": "/phoneNumber", "value": "+15550001"},
            {"op": "add", "path": "/tags/-", "value": "b"},
            {"op": "remove", "path": "/drop"},
            {"op": "test", "path": "/name", "value": "Jack"},
            {"op": "copy", "from": "/name", "path": "/nick"},
        ],
        headers=user,
    )
    assert response.status_code == 200, response.text
    expected = {
        "name": "Jack",
        "email": "jack@titanic.com",
        "tags": ["a", "b"],
        "phoneNumber": "+15550001",
        "nick": "Jack",
    }
    assert response.json() == expected
    assert (await client.get("/v3/profile", headers=user)).json() == expected


async def test_patch_profile_creates_the_user(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.patch(
        "/v3/profile", json=[{"op": "add", "path": "/a", "value": 1}], headers=creds.user("new")
    )
    assert response.json() == {"a": 1}
    assert await _users(session, creds.id) == {"new": {"a": 1}}


async def test_patch_profile_with_an_empty_patch(client: httpx.AsyncClient, creds: Creds) -> None:
    await client.put("/v3/profile", json={"a": 1}, headers=creds.user("u1"))
    response = await client.patch("/v3/profile", json=[], headers=creds.user("u1"))
    assert response.status_code == 200
    assert response.json() == {"a": 1}


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "bogus", "path": "/a"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing/deeper", "value": 1}],
        [{"op": "test", "path": "/name", "value": "Rose"}],
        [{"path": "/a", "value": 1}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "move", "from": "/missing", "path": "/a"}],
        [{"op": "add", "path": "", "value": [1, 2]}],
        [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/missing"}],
        ["replace /name"],
        [1],
    ],
)
async def test_patch_profile_invalid_operations_are_400(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, operations: list[Any]
) -> None:
    await client.put("/v3/profile", json={"name": "Jack"}, headers=creds.user("u1"))
    response = await client.patch("/v3/profile", json=operations, headers=creds.user("u1"))
    message = _error(response, 400)
    assert isinstance(message, list)
    assert len(message) == 1
    assert message[0].startswith("invalid JSON Patch")
    # All or nothing: the profile is unchanged.
    assert await _users(session, creds.id) == {"u1": {"name": "Jack"}}


async def test_patch_profile_cannot_add_identifier(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.patch(
        "/v3/profile",
        json=[{"op": "add", "path": "/identifier", "value": "x"}],
        headers=creds.user("u1"),
    )
    assert _error(response, 422) == IDENTIFIER_KEY
    assert await _count(session, User, User.profile.has_key("identifier")) == 0


async def test_patch_profile_with_a_plain_object_merges(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    user = creds.user("u1")
    await client.put("/v3/profile", json={"name": "Jack", "city": "Paris"}, headers=user)
    response = await client.patch(
        "/v3/profile", json={"city": "Rome", "fcm": {"token": "t"}}, headers=user
    )
    assert response.status_code == 200
    assert response.json() == {"name": "Jack", "city": "Rome", "fcm": {"tokens": ["t"]}}
    refused = await client.patch("/v3/profile", json={"identifier": "x"}, headers=user)
    assert _error(refused, 422) == IDENTIFIER_KEY


async def test_patch_profile_with_a_scalar_body_is_400(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    for body in ("text", 5, True):
        response = await client.patch("/v3/profile", json=body, headers=creds.user("u1"))
        assert _error(response, 400) == [
            "request body must be an array",
            "request body must be an object",
        ]
    missing = await client.patch("/v3/profile", headers=creds.user("u1"))
    assert _error(missing, 400) == ["request body is required"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH"])
async def test_profile_needs_a_user(client: httpx.AsyncClient, creds: Creds, method: str) -> None:
    assert _error(await client.request(method, "/v3/profile", json={}), 401) == NO_AUTH
    as_backend = await client.request(method, "/v3/profile", json={}, headers=creds.backend())
    assert _error(as_backend, 400) == [
        "userIdentifier is required when authenticating with the API secret"
    ]
