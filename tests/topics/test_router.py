"""/v3/topics: create, list, rename, delete, subscribe, detach, per-user channels, refusals."""

import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NO_AUTH
from app.topics.models import Topic, TopicSubscription
from app.users.models import User
from tests.factories import Creds
from tests.factories import error_message as _error

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PATTERN = r"^\S+$"
BACKEND_ONLY = (
    "This route needs the app's credentials: X-ENGAGESPOT-API-KEY and X-ENGAGESPOT-API-SECRET"
)


async def _create(
    client: httpx.AsyncClient, creds: Creds, name: str, identifier: str | None = None
) -> dict[str, Any]:
    body = {"name": name} if identifier is None else {"name": name, "identifier": identifier}
    response = await client.post("/v3/topics", json=body, headers=creds.backend())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _subscribe(
    client: httpx.AsyncClient, creds: Creds, topic_id: int, users: list[dict[str, Any]]
) -> dict[str, Any]:
    response = await client.post(
        f"/v3/topics/{topic_id}/users", json={"users": users}, headers=creds.backend()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _subscribers(session: AsyncSession, topic_id: int) -> dict[str, list[str]]:
    """identifier -> channels of every subscription of a topic, read from the table."""
    rows = await session.execute(
        select(User.identifier, TopicSubscription.channels)
        .join(TopicSubscription, TopicSubscription.user_id == User.id)
        .where(TopicSubscription.topic_id == topic_id)
        .execution_options(populate_existing=True)
    )
    return {identifier: list(channels) for identifier, channels in rows}


async def _topics(session: AsyncSession, app_id: int) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(Topic.identifier, Topic.name)
        .where(Topic.app_id == app_id)
        .order_by(Topic.id)
        .execution_options(populate_existing=True)
    )
    return [(identifier, name) for identifier, name in rows]


def _when(value: str) -> datetime:
    assert ISO.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- create -------------------------------------------------------------------------------------


async def test_create_topic_answers_201_with_the_topic(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    response = await client.post(
        "/v3/topics", json={"name": "Product news", "identifier": "news"}, headers=creds.backend()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == ["id", "name", "identifier", "createdAt", "updatedAt"]
    assert isinstance(body["id"], int)
    assert (body["name"], body["identifier"]) == ("Product news", "news")
    assert _when(body["createdAt"]) == _when(body["updatedAt"])
    row = await session.get(Topic, body["id"])
    assert row is not None
    assert (row.app_id, row.identifier, row.name) == (creds.id, "news", "Product news")


@pytest.mark.parametrize(
    ("name", "stored", "identifier"),
    [
        ("Product Updates", "Product Updates", "product-updates"),
        ("Weekly   DIGEST\tmail", "Weekly   DIGEST\tmail", "weekly-digest-mail"),
        ("  Padded  ", "Padded", "padded"),
        ("v2.0:beta_1", "v2.0:beta_1", "v2.0:beta_1"),
        ("News/Updates", "News/Updates", "news/updates"),
    ],
)
async def test_identifier_is_derived_from_the_name_like_the_node_sdk(
    client: httpx.AsyncClient, creds: Creds, name: str, stored: str, identifier: str
) -> None:
    body = await _create(client, creds, name)
    assert (body["name"], body["identifier"]) == (stored, identifier)


async def test_duplicate_identifier_is_409_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _create(client, creds, "Product Updates")
    for body in ({"name": "Other", "identifier": "product-updates"}, {"name": "product  updates"}):
        response = await client.post("/v3/topics", json=body, headers=creds.backend())
        assert _error(response, 409) == ("A topic with identifier 'product-updates' already exists")
    assert await _topics(session, creds.id) == [("product-updates", "Product Updates")]


async def test_identifiers_are_unique_per_app_only(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    mine = await _create(client, creds, "News")
    theirs = await _create(client, other, "News")
    assert mine["identifier"] == theirs["identifier"] == "news"
    assert mine["id"] != theirs["id"]


CREATE_REFUSALS: list[tuple[Any, list[str]]] = [
    ({}, ["name is required"]),
    ({"name": ""}, ["name should not be empty"]),
    ({"name": "   "}, ["name should not be empty"]),
    ({"name": 5}, ["name must be a string"]),
    ({"name": "x" * 256}, ["name must be shorter than or equal to 255 characters"]),
    ({"name": "x", "identifier": ""}, ["identifier should not be empty"]),
    ({"name": "x", "identifier": "a b"}, [f"identifier must match {PATTERN} regular expression"]),
    (
        {"name": "x", "identifier": "i" * 256},
        ["identifier must be shorter than or equal to 255 characters"],
    ),
    (["News"], ["request body must be an object"]),
]


async def test_create_refuses_invalid_bodies(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    for body, message in CREATE_REFUSALS:
        response = await client.post("/v3/topics", json=body, headers=creds.backend())
        assert _error(response, 400) == message, body
    assert await _topics(session, creds.id) == []


async def test_create_refuses_malformed_json(client: httpx.AsyncClient, creds: Creds) -> None:
    response = await client.post(
        "/v3/topics",
        content=b'{"name": ',
        headers={**creds.backend(), "Content-Type": "application/json"},
    )
    assert _error(response, 400) == ["request body is not valid JSON"]


# -- list, rename, delete -----------------------------------------------------------------------


async def test_list_topics_of_this_app_in_creation_order(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    response = await client.get("/v3/topics", headers=creds.backend())
    assert response.status_code == 200
    assert response.json() == []
    created = [await _create(client, creds, name) for name in ("B", "A", "C")]
    await _create(client, other, "Theirs")
    response = await client.get("/v3/topics", headers=creds.backend())
    assert response.status_code == 200
    assert response.json() == created


async def test_rename_topic_keeps_its_identifier(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Old name")
    response = await client.patch(
        f"/v3/topics/{topic['id']}", json={"name": "  New name "}, headers=creds.backend()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("id", "name", "identifier", "createdAt")} == {
        "id": topic["id"],
        "name": "New name",
        "identifier": "old-name",
        "createdAt": topic["createdAt"],
    }
    assert _when(body["updatedAt"]) >= _when(topic["updatedAt"])
    assert await _topics(session, creds.id) == [("old-name", "New name")]


async def test_rename_refuses_invalid_bodies(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Kept")
    for body, message in (
        ({}, ["name is required"]),
        ({"name": " "}, ["name should not be empty"]),
        ({"name": None}, ["name must be a string"]),
    ):
        response = await client.patch(
            f"/v3/topics/{topic['id']}", json=body, headers=creds.backend()
        )
        assert _error(response, 400) == message, body
    assert await _topics(session, creds.id) == [("kept", "Kept")]


async def test_delete_topic_removes_its_subscriptions_but_not_the_users(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    doomed = await _create(client, creds, "Doomed")
    kept = await _create(client, creds, "Kept")
    await _subscribe(client, creds, doomed["id"], [{"identifier": "alice"}, {"identifier": "bob"}])
    await _subscribe(client, creds, kept["id"], [{"identifier": "alice"}])

    response = await client.delete(f"/v3/topics/{doomed['id']}", headers=creds.backend())
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Topic deleted", "count": 1}

    assert await _topics(session, creds.id) == [("kept", "Kept")]
    assert await _subscribers(session, doomed["id"]) == {}
    assert await _subscribers(session, kept["id"]) == {"alice": []}
    users = await session.scalars(
        select(User.identifier).where(User.app_id == creds.id).order_by(User.identifier)
    )
    assert list(users) == ["alice", "bob"]
    again = await client.delete(f"/v3/topics/{doomed['id']}", headers=creds.backend())
    assert _error(again, 404) == "Topic not found"


# -- subscriptions ------------------------------------------------------------------------------


async def test_subscribe_creates_unknown_users_with_their_channels(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    body = await _subscribe(
        client,
        creds,
        topic["id"],
        [
            {"identifier": "alice", "channels": ["email", "inApp", "email"]},
            {"identifier": "bob@example.com", "channels": []},
            {"identifier": "carol"},
        ],
    )
    assert body == {"message": "Users subscribed", "count": 3}
    # Channels keep their order without repeats; none given means every channel.
    assert await _subscribers(session, topic["id"]) == {
        "alice": ["email", "inApp"],
        "bob@example.com": [],
        "carol": [],
    }
    # A user created on the way is a normal user (an e-mail identifier fills `email`).
    profile = await session.scalar(
        select(User.profile).where(User.app_id == creds.id, User.identifier == "bob@example.com")
    )
    assert profile == {"email": "bob@example.com"}


async def test_subscribing_again_replaces_channels_and_counts_each_user_once(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    await _subscribe(client, creds, topic["id"], [{"identifier": "alice", "channels": ["sms"]}])
    body = await _subscribe(
        client,
        creds,
        topic["id"],
        [
            {"identifier": "alice", "channels": ["push"]},
            {"identifier": "bob", "channels": ["email"]},
            {"identifier": "alice", "channels": ["webPush", "inApp"]},
        ],
    )
    assert body == {"message": "Users subscribed", "count": 2}
    assert await _subscribers(session, topic["id"]) == {
        "alice": ["webPush", "inApp"],
        "bob": ["email"],
    }


SUBSCRIBE_REFUSALS: list[tuple[Any, list[str]]] = [
    ({}, ["users is required"]),
    ({"users": []}, ["users must contain at least 1 elements"]),
    ({"users": {"identifier": "a"}}, ["users must be an array"]),
    ({"users": ["alice"]}, ["users.0 must be an object"]),
    ({"users": [{"channels": ["email"]}]}, ["users.0.identifier is required"]),
    ({"users": [{"identifier": ""}]}, ["users.0.identifier should not be empty"]),
    ({"users": [{"identifier": "a", "channels": "email"}]}, ["users.0.channels must be an array"]),
    (
        {"users": [{"identifier": "a", "channels": [""]}]},
        ["users.0.channels.0 should not be empty"],
    ),
    (
        {"users": [{"identifier": "a", "channels": ["c"] * 21}]},
        ["users.0.channels must contain no more than 20 elements"],
    ),
    (
        {"users": [{"identifier": f"u{i}"} for i in range(10_001)]},
        ["users must contain no more than 10000 elements"],
    ),
]


async def test_subscribe_refuses_invalid_bodies(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    for body, message in SUBSCRIBE_REFUSALS:
        response = await client.post(
            f"/v3/topics/{topic['id']}/users", json=body, headers=creds.backend()
        )
        assert _error(response, 400) == message, str(body)[:200]
    assert await _subscribers(session, topic["id"]) == {}
    users = await session.scalar(select(User.id).where(User.app_id == creds.id))
    assert users is None


async def test_detach_users_by_identifier(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    kept = await _create(client, creds, "Kept")
    everyone = [{"identifier": u} for u in ("alice", "bob", "carol", "dave")]
    await _subscribe(client, creds, topic["id"], everyone)
    await _subscribe(client, creds, kept["id"], everyone)

    # @engagespot/node sends identifiers; objects with `identifier` work too; unknown
    # identifiers and users not in the topic are skipped, not refused.
    response = await client.post(
        f"/v3/topics/{topic['id']}/detachUsers",
        json={"users": ["alice", {"identifier": "carol"}, "nobody", "alice"]},
        headers=creds.backend(),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Users detached", "count": 2}
    assert await _subscribers(session, topic["id"]) == {"bob": [], "dave": []}
    assert set(await _subscribers(session, kept["id"])) == {"alice", "bob", "carol", "dave"}

    again = await client.post(
        f"/v3/topics/{topic['id']}/detachUsers", json={"users": ["alice"]}, headers=creds.backend()
    )
    assert again.json() == {"message": "Users detached", "count": 0}


async def test_detach_refuses_invalid_bodies(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    await _subscribe(client, creds, topic["id"], [{"identifier": "alice"}])
    for body, message in (
        ({}, ["users is required"]),
        ({"users": []}, ["users must contain at least 1 elements"]),
        ({"users": "alice"}, ["users must be an array"]),
        ({"users": [7]}, ["users.0 must be a string", "users.0 must be an object"]),
        ({"users": [""]}, ["users.0 should not be empty", "users.0 must be an object"]),
    ):
        response = await client.post(
            f"/v3/topics/{topic['id']}/detachUsers", json=body, headers=creds.backend()
        )
        assert _error(response, 400) == message, body
    assert await _subscribers(session, topic["id"]) == {"alice": []}


async def test_set_a_users_channels_subscribing_them_if_needed(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    url = f"/v3/topics/{topic['id']}/users/alice%40example.com"
    first = await client.put(url, json={"channels": ["email", "sms"]}, headers=creds.backend())
    assert first.status_code == 200, first.text
    assert first.json() == {"message": "Channels updated", "count": 1}
    assert await _subscribers(session, topic["id"]) == {"alice@example.com": ["email", "sms"]}

    second = await client.put(url, json={"channels": []}, headers=creds.backend())
    assert second.status_code == 200, second.text
    assert await _subscribers(session, topic["id"]) == {"alice@example.com": []}


async def test_set_channels_refuses_invalid_bodies(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic = await _create(client, creds, "Deals")
    await _subscribe(client, creds, topic["id"], [{"identifier": "alice", "channels": ["sms"]}])
    for body, message in (
        ({}, ["channels is required"]),
        ({"channels": "email"}, ["channels must be an array"]),
        ({"channels": [1]}, ["channels.0 must be a string"]),
        ({"channels": ["x" * 33]}, ["channels.0 must be shorter than or equal to 32 characters"]),
        ({"channels": ["c"] * 21}, ["channels must contain no more than 20 elements"]),
    ):
        response = await client.put(
            f"/v3/topics/{topic['id']}/users/alice", json=body, headers=creds.backend()
        )
        assert _error(response, 400) == message, body
    assert await _subscribers(session, topic["id"]) == {"alice": ["sms"]}


async def test_list_a_users_subscriptions(
    client: httpx.AsyncClient, creds: Creds, other: Creds
) -> None:
    first = await _create(client, creds, "First")
    second = await _create(client, creds, "Second")
    await _create(client, creds, "Not subscribed")
    await _subscribe(client, creds, second["id"], [{"identifier": "alice", "channels": ["sms"]}])
    await _subscribe(client, creds, first["id"], [{"identifier": "alice"}])
    # The same identifier in another app is another user.
    theirs = await _create(client, other, "Theirs")
    await _subscribe(client, other, theirs["id"], [{"identifier": "alice"}])

    response = await client.get("/v3/topics/subscriptions/alice", headers=creds.backend())
    assert response.status_code == 200, response.text
    items = response.json()
    assert [(i["topic"], i["channels"]) for i in items] == [(first, []), (second, ["sms"])]
    for item in items:
        assert list(item) == ["topic", "channels", "createdAt"]
        _when(item["createdAt"])

    for nobody in ("bob", "nobody%40example.com"):
        empty = await client.get(f"/v3/topics/subscriptions/{nobody}", headers=creds.backend())
        assert empty.status_code == 200
        assert empty.json() == []


# -- refusals shared by every route -------------------------------------------------------------

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v3/topics", None),
    ("POST", "/v3/topics", {"name": "Deals"}),
    ("PATCH", "/v3/topics/{id}", {"name": "Renamed"}),
    ("DELETE", "/v3/topics/{id}", None),
    ("POST", "/v3/topics/{id}/users", {"users": [{"identifier": "mallory"}]}),
    ("POST", "/v3/topics/{id}/detachUsers", {"users": ["alice"]}),
    ("PUT", "/v3/topics/{id}/users/alice", {"channels": ["sms"]}),
    ("GET", "/v3/topics/subscriptions/alice", None),
]
TOPIC_ROUTES = [r for r in ROUTES if "{id}" in r[1]]


async def _seeded(client: httpx.AsyncClient, session: AsyncSession, creds: Creds) -> int:
    topic = await _create(client, creds, "Seeded")
    await _subscribe(client, creds, topic["id"], [{"identifier": "alice", "channels": ["email"]}])
    return int(topic["id"])


async def _unchanged(session: AsyncSession, creds: Creds, topic_id: int) -> None:
    assert await _topics(session, creds.id) == [("seeded", "Seeded")]
    assert await _subscribers(session, topic_id) == {"alice": ["email"]}


async def test_every_route_needs_the_apps_secret(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    topic_id = await _seeded(client, session, creds)
    wrong_secret = {**creds.backend(), "X-ENGAGESPOT-API-SECRET": "not-the-secret"}
    wrong_key = {**creds.backend(), "X-ENGAGESPOT-API-KEY": "not-a-key"}
    for method, path, body in ROUTES:
        for headers, message in (
            ({}, NO_AUTH),
            (creds.user("alice"), BACKEND_ONLY),
            (creds.signed("alice"), BACKEND_ONLY),
            (wrong_secret, "Invalid API secret"),
            (wrong_key, "Invalid API key"),
        ):
            response = await client.request(
                method, path.format(id=topic_id), json=body, headers=headers
            )
            assert _error(response, 401) == message, (method, path, headers)
    await _unchanged(session, creds, topic_id)


async def test_another_apps_topic_is_404(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    topic_id = await _seeded(client, session, creds)
    for method, path, body in TOPIC_ROUTES:
        response = await client.request(
            method, path.format(id=topic_id), json=body, headers=other.backend()
        )
        assert _error(response, 404) == "Topic not found", (method, path)
        missing = await client.request(
            method, path.format(id=topic_id + 1000), json=body, headers=creds.backend()
        )
        assert _error(missing, 404) == "Topic not found", (method, path)
    await _unchanged(session, creds, topic_id)
    # Nothing leaked into the other app either (e.g. a user created by a refused subscribe).
    users = await session.scalar(select(User.id).where(User.app_id == other.id))
    assert users is None


async def test_topic_id_must_be_a_positive_bigint(client: httpx.AsyncClient, creds: Creds) -> None:
    for method, path, body in TOPIC_ROUTES:
        for topic_id, message in (
            ("deals", "topic_id must be an integer"),
            ("0", "topic_id must not be less than 1"),
            (str(2**63), "topic_id must not be greater than 9223372036854775807"),
        ):
            response = await client.request(
                method, path.replace("{id}", topic_id), json=body, headers=creds.backend()
            )
            assert _error(response, 400) == [message], (method, path, topic_id)
