"""POST /v3/notifications: validation, recipients, categories, preferences and inbox content."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category
from app.config import Settings
from app.errors import NO_AUTH
from app.inbox.models import Notification
from app.sends.models import NotificationRequest
from app.users.models import User
from tests.factories import Creds, send_body

TITLE_REQUIRED = (
    "notification.title is required (Herald sends inline content; it hosts no "
    "templates or workflows)"
)
NO_RECIPIENT = "sendTo must name at least one recipient or topic"


async def _send(client: httpx.AsyncClient, creds: Creds, body: object) -> httpx.Response:
    return await client.post("/v3/notifications", json=body, headers=creds.backend())


async def _accepted(client: httpx.AsyncClient, creds: Creds, body: object) -> str:
    response = await _send(client, creds, body)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


async def _inbox(client: httpx.AsyncClient, creds: Creds, user: str) -> dict[str, Any]:
    response = await client.get("/v3/notifications", headers=creds.user(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _inbox_owners(session: AsyncSession, app_id: int) -> list[str]:
    rows = await session.scalars(
        select(User.identifier)
        .join(Notification, Notification.user_id == User.id)
        .where(Notification.app_id == app_id)
        .order_by(User.identifier)
    )
    return list(rows)


async def _profile(session: AsyncSession, app_id: int, identifier: str) -> dict[str, Any] | None:
    profile: dict[str, Any] | None = await session.scalar(
        select(User.profile)
        .where(User.app_id == app_id, User.identifier == identifier)
        .execution_options(populate_existing=True)
    )
    return profile


# -- acceptance ---------------------------------------------------------------------------------


async def test_send_answers_202_with_a_request_id_and_stores_the_request(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    body = send_body("alice", "bob", title="Rose accepted your friend request")
    response = await _send(client, creds, body)

    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["requestId"]
    request_id = uuid.UUID(response.json()["requestId"])
    stored = await session.get(NotificationRequest, request_id)
    assert stored is not None
    assert stored.app_id == creds.id
    assert stored.recipient_count == 2
    assert stored.payload == body
    rows = list(
        await session.scalars(select(Notification).where(Notification.request_id == request_id))
    )
    assert len(rows) == 2
    assert {r.app_id for r in rows} == {creds.id}
    assert await _inbox_owners(session, creds.id) == ["alice", "bob"]


async def test_every_send_gets_its_own_request_id(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    first = await _accepted(client, creds, send_body("alice"))
    second = await _accepted(client, creds, send_body("alice"))
    assert first != second
    assert await _count(session, NotificationRequest, NotificationRequest.app_id == creds.id) == 2
    assert (await _inbox(client, creds, "alice"))["pagination"]["totalCount"] == 2


async def test_inbox_item_carries_the_sent_content(client: httpx.AsyncClient, creds: Creds) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    blocks = [
        {"id": "b1", "type": "button", "text": "Accept", "variant": "primary", "link": "/ok"},
        {"id": "b2", "type": "image", "src": ["https://x/1.png", "https://x/2.png"]},
        {"id": "b3", "type": "textarea", "nested": {"deep": [1, {"two": None}]}},
    ]
    await _accepted(
        client,
        creds,
        send_body(
            "alice",
            title="New comment",
            notification={
                "message": "Am I doing good?",
                "icon": "https://logidots.com/favicon.png",
                "url": "https://engagespot.co",
                "blocks": blocks,
            },
        ),
    )
    page = await _inbox(client, creds, "alice")
    assert page["unreadCount"] == 1
    assert page["pagination"]["totalCount"] == 1
    (item,) = page["data"]
    created = datetime.fromisoformat(item.pop("createdAt").replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC)
    assert isinstance(item.pop("id"), int)
    assert item == {
        "title": "New comment",
        "message": "Am I doing good?",
        "icon": "https://logidots.com/favicon.png",
        "url": "https://engagespot.co",
        "data": None,
        "category": None,
        "blocks": blocks,
        "seenAt": None,
        "clickedAt": None,
        "state": "unread",
    }


async def test_created_at_is_written_with_milliseconds_and_z(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await _accepted(client, creds, send_body("alice"))
    created = (await _inbox(client, creds, "alice"))["data"][0]["createdAt"]
    assert len(created) == len("2024-01-26T04:11:50.107Z")
    assert created.endswith("Z")
    assert created[19] == "."


async def test_notification_data_is_merged_over_top_level_data(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await _accepted(
        client,
        creds,
        send_body(
            "alice",
            notification={"data": {"b": "inner", "c": [1, 2]}},
            data={
                "a": 1,
                "b": "outer",
                "attachments": [{"name": "x.pdf", "content": "QUJD", "contentType": "a/b"}],
            },
        ),
    )
    (item,) = (await _inbox(client, creds, "alice"))["data"]
    # notification.data wins on a clash; e-mail attachments stay out of the inbox row.
    assert item["data"] == {"a": 1, "b": "inner", "c": [1, 2]}


async def test_top_level_data_alone_reaches_the_inbox(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await _accepted(client, creds, send_body("alice", data={"orderNumber": "#485930"}))
    (item,) = (await _inbox(client, creds, "alice"))["data"]
    assert item["data"] == {"orderNumber": "#485930"}


async def test_extra_documented_fields_are_accepted(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = send_body(
        "alice",
        notification={"workflow": {"identifier": "w", "cancellationKey": "k"}, "templateId": 7},
        sendAt=past,
        override={"channel": {"email": {"replyTo": "r@x.com"}}, "fcm": {"x": 1}},
        somethingNew={"kept": True},
    )
    request_id = await _accepted(client, creds, body)
    stored = await session.get(NotificationRequest, uuid.UUID(request_id))
    assert stored is not None
    assert stored.payload["somethingNew"] == {"kept": True}
    assert (await _inbox(client, creds, "alice"))["pagination"]["totalCount"] == 1


# -- authentication ------------------------------------------------------------------------------


async def test_send_without_credentials_is_401_in_the_seed_shape(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await client.post("/v3/notifications", json=send_body("alice"))
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["message"] == NO_AUTH
    assert await _count(session, NotificationRequest) == 0


@pytest.mark.parametrize("mode", ["user", "signed", "wrong_secret", "wrong_key", "key_only"])
async def test_send_needs_the_app_secret(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, mode: str
) -> None:
    headers = {
        "user": creds.user("alice"),
        "signed": creds.signed("alice"),
        "wrong_secret": {**creds.backend(), "X-ENGAGESPOT-API-SECRET": "nope"},
        "wrong_key": {**creds.backend(), "X-ENGAGESPOT-API-KEY": "nope"},
        "key_only": {"X-ENGAGESPOT-API-KEY": creds.api_key},
    }[mode]
    response = await client.post("/v3/notifications", json=send_body("alice"), headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == "error"
    assert isinstance(response.json()["message"], str)
    assert await _count(session, NotificationRequest) == 0
    assert await _count(session, Notification) == 0


async def test_another_apps_secret_does_not_open_this_app(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    headers = {"X-ENGAGESPOT-API-KEY": creds.api_key, "X-ENGAGESPOT-API-SECRET": other.api_secret}
    response = await client.post("/v3/notifications", json=send_body("alice"), headers=headers)
    assert response.status_code == 401
    assert await _count(session, Notification) == 0


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({"sendTo": {"recipients": ["alice"]}}, ["notification is required"]),
        (
            {"notification": "hi", "sendTo": {"recipients": ["alice"]}},
            ["notification must be an object"],
        ),
        (
            {"notification": ["hi"], "sendTo": {"recipients": ["alice"]}},
            ["notification must be an object"],
        ),
        ({"notification": {}, "sendTo": {"recipients": ["alice"]}}, [TITLE_REQUIRED]),
        ({"notification": {"title": ""}, "sendTo": {"recipients": ["alice"]}}, [TITLE_REQUIRED]),
        ({"notification": {"title": "t"}}, [NO_RECIPIENT]),
        ({"notification": {"title": "t"}, "sendTo": {"recipients": []}}, [NO_RECIPIENT]),
        ({"notification": {}, "sendTo": {}}, [TITLE_REQUIRED, NO_RECIPIENT]),
        (
            {"notification": {"title": "t"}, "sendTo": {"recipients": "alice"}},
            ["sendTo.recipients must be an array"],
        ),
        (
            {"notification": {"title": "t"}, "sendTo": {"topics": ["topic1"]}},
            ["unknown topic: topic1"],
        ),
        (
            {"notification": {"title": 5}, "sendTo": {"recipients": ["a"]}},
            ["notification.title must be a string"],
        ),
        (
            {"notification": {"title": "t"}, "recipients": ["a"], "sendAt": "2020-01-01T00:00"},
            ["sendAt must carry a time zone (ISO 8601, e.g. 2026-01-01T09:00:00Z)"],
        ),
        (
            {"notification": {"title": "t"}, "recipients": ["a"], "sendAt": "tomorrow"},
            ["sendAt must be an ISO 8601 date-time"],
        ),
        (
            {"notification": {"title": "t"}, "recipients": ["a"], "data": [1]},
            ["data must be an object"],
        ),
        (
            {"notification": {"title": "t"}, "recipients": ["a"], "override": {"channels": "x"}},
            ["override.channels must be an array"],
        ),
        ([], ["request body must be an object"]),
    ],
)
async def test_invalid_sends_are_400_with_a_message_list(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    body: object,
    messages: list[str],
) -> None:
    response = await _send(client, creds, body)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert response.json()["message"] == messages
    assert await _count(session, NotificationRequest) == 0
    assert await _count(session, User) == 0


async def test_bad_recipient_entries_are_400(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    for recipient in ["", 5, {"email": "no-identifier@x.com"}, "x" * 256]:
        response = await _send(client, creds, send_body("alice", recipient))  # type: ignore[arg-type]
        assert response.status_code == 400, (recipient, response.text)
        body = response.json()
        assert body["status"] == "error"
        assert isinstance(body["message"], list)
        assert all(m.startswith("sendTo.recipients.1") for m in body["message"])
    assert await _count(session, User) == 0


async def test_malformed_json_is_400(client: httpx.AsyncClient, creds: Creds) -> None:
    response = await client.post(
        "/v3/notifications",
        content=b'{"notification": ',
        headers={**creds.backend(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == ["request body is not valid JSON"]


@pytest.mark.parametrize(
    ("headers", "content", "status", "message"),
    [
        # As FastAPI read it: a body that is no JSON is refused before the credentials are
        # looked at, and a missing body or one sent as text is no object.
        ({"X-ENGAGESPOT-API-SECRET": "wrong"}, b"{", 400, ["request body is not valid JSON"]),
        ({"X-ENGAGESPOT-API-SECRET": "wrong"}, b"[]", 401, "Invalid API secret"),
        ({}, b"", 400, ["request body is required"]),
        (
            {"Content-Type": "text/plain"},
            b'{"notification":{}}',
            400,
            ["request body must be an object"],
        ),
        (
            {"Content-Type": "application/json"},
            b"\xff\xfe{",
            400,
            "There was an error parsing the body",
        ),
        # The header's errors and the body's come together, the header's first, named.
        (
            {"Idempotency-Key": ""},
            b"[]",
            400,
            ["Idempotency-Key should not be empty", "request body must be an object"],
        ),
        (
            {"Idempotency-Key": "k" * 256},
            b'{"notification":{"title":"t"},"sendTo":{"recipients":["a"]}}',
            400,
            ["Idempotency-Key must be shorter than or equal to 255 characters"],
        ),
        (
            {"Content-Type": "application/vnd.api+json"},
            b'{"notification":{"title":"t"},"sendTo":{"recipients":["a"]}}',
            202,
            None,
        ),
    ],
)
async def test_the_body_and_header_are_read_as_fastapi_reads_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    headers: dict[str, str],
    content: bytes,
    status: int,
    message: object,
) -> None:
    sent = {"Content-Type": "application/json", **creds.backend(), **headers}
    response = await client.post("/v3/notifications", content=content, headers=sent)
    assert response.status_code == status, response.text
    if status == 202:
        assert await _count(session, NotificationRequest) == 1
        return
    body = response.json()
    assert body["status"] == "error"
    assert body["message"] == message
    assert await _count(session, NotificationRequest) == 0


async def test_more_recipients_than_the_limit_is_400(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, settings: Settings
) -> None:
    recipients = [f"user-{i}" for i in range(settings.max_recipients + 1)]
    response = await _send(client, creds, send_body(*recipients))
    assert response.status_code == 400
    assert response.json()["message"] == [
        f"at most {settings.max_recipients} recipients per request"
    ]
    assert await _count(session, User) == 0


async def test_recipient_limits_follow_the_settings(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, creds: Creds, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"max_recipients": 5, "inline_recipients": 3})
    over = await _send(client, creds, send_body(*[f"u{i}" for i in range(6)]))
    assert over.status_code == 400
    assert over.json()["message"] == ["at most 5 recipients per request"]

    # Duplicates do not count: three distinct names are written at once.
    inline = await _accepted(client, creds, send_body("u0", "u1", "u2", "u1", "u0"))
    stored = await session.get(NotificationRequest, uuid.UUID(inline))
    assert stored is not None
    assert (stored.recipient_count, stored.status) == (3, "done")
    assert await _count(session, Notification, Notification.request_id == stored.id) == 3

    # Above the inline limit the rows are the worker's job; the request waits for it.
    queued = await _accepted(client, creds, send_body(*[f"u{i}" for i in range(5)]))
    stored = await session.get(NotificationRequest, uuid.UUID(queued))
    assert stored is not None
    assert (stored.recipient_count, stored.status) == (5, "queued")
    assert await _count(session, Notification, Notification.request_id == stored.id) == 0
    assert await _count(session, User, User.app_id == creds.id) == 5


async def test_a_thousand_recipients_are_written_at_once(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, settings: Settings
) -> None:
    recipients = [f"user-{i}" for i in range(settings.inline_recipients)]
    request_id = await _accepted(client, creds, send_body(*recipients))
    assert await _count(session, Notification, Notification.app_id == creds.id) == len(recipients)
    assert await _count(session, User, User.app_id == creds.id) == len(recipients)
    stored = await session.get(NotificationRequest, uuid.UUID(request_id))
    assert stored is not None
    assert stored.recipient_count == len(recipients)


# -- recipients ----------------------------------------------------------------------------------


async def test_unknown_identifiers_become_users(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _accepted(
        client, creds, send_body("plain-id", "ann@example.com", "not-an@email", "sp ace@x.com")
    )
    users = {
        u.identifier: u.profile
        for u in await session.scalars(select(User).where(User.app_id == creds.id))
    }
    # Only an email-looking identifier fills `profile.email`.
    assert users == {
        "plain-id": {},
        "ann@example.com": {"email": "ann@example.com"},
        "not-an@email": {},
        "sp ace@x.com": {},
    }
    for identifier in users:
        assert (await _inbox(client, creds, identifier))["unreadCount"] == 1


async def test_recipients_are_deduplicated(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    body = send_body(
        "alice",
        "alice",
        {"identifier": "alice", "name": "Alice"},
        {"identifier": "alice", "plan": "pro"},
        "bob",
        recipients=["bob", "carol"],
    )
    request_id = await _accepted(client, creds, body)
    stored = await session.get(NotificationRequest, uuid.UUID(request_id))
    assert stored is not None
    assert stored.recipient_count == 3
    assert await _inbox_owners(session, creds.id) == ["alice", "bob", "carol"]
    assert await _profile(session, creds.id, "alice") == {"name": "Alice", "plan": "pro"}
    assert (await _inbox(client, creds, "alice"))["pagination"]["totalCount"] == 1


async def test_inline_recipients_create_users_with_their_profiles(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _accepted(
        client,
        creds,
        send_body(
            {"identifier": "dan@example.com", "firstName": "Dan", "phoneNumber": "+15550001"},
            {"identifier": "eve@example.com", "email": "eve@work.example"},
            {"identifier": "frank"},
        ),
    )
    assert await _profile(session, creds.id, "dan@example.com") == {
        "email": "dan@example.com",
        "firstName": "Dan",
        "phoneNumber": "+15550001",
    }
    # An explicit email beats the one derived from the identifier.
    assert await _profile(session, creds.id, "eve@example.com") == {"email": "eve@work.example"}
    assert await _profile(session, creds.id, "frank") == {}
    assert await _inbox_owners(session, creds.id) == ["dan@example.com", "eve@example.com", "frank"]


async def test_inline_recipients_merge_into_existing_profiles(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    put = await client.put(
        "/v3/users/alice", json={"name": "Old", "plan": "pro"}, headers=creds.backend()
    )
    assert put.status_code == 200
    await _accepted(
        client, creds, send_body({"identifier": "alice", "name": "New", "phoneNumber": "+1"})
    )
    assert await _profile(session, creds.id, "alice") == {
        "name": "New",
        "plan": "pro",
        "phoneNumber": "+1",
    }
    assert await _count(session, User, User.app_id == creds.id) == 1


async def test_a_bare_identifier_leaves_an_existing_profile_alone(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await client.put("/v3/users/alice", json={"name": "Alice"}, headers=creds.backend())
    await _accepted(client, creds, send_body("alice"))
    assert await _profile(session, creds.id, "alice") == {"name": "Alice"}


async def test_legacy_top_level_recipients_and_category(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _accepted(
        client,
        creds,
        {"notification": {"title": "Legacy"}, "recipients": ["alice"], "category": "legacy"},
    )
    (item,) = (await _inbox(client, creds, "alice"))["data"]
    category = await session.scalar(select(Category).where(Category.app_id == creds.id))
    assert category is not None
    assert item["title"] == "Legacy"
    assert item["category"] == {"id": str(category.id), "identifier": "legacy", "name": "legacy"}


async def test_notification_category_beats_top_level_category(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _accepted(
        client, creds, send_body("alice", notification={"category": "inner"}, category="outer")
    )
    (item,) = (await _inbox(client, creds, "alice"))["data"]
    assert item["category"]["identifier"] == "inner"
    identifiers = await session.scalars(
        select(Category.identifier).where(Category.app_id == creds.id)
    )
    assert list(identifiers) == ["inner"]


async def test_same_identifier_in_two_apps_is_two_users(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    await _accepted(client, creds, send_body("alice", title="for app one"))
    assert (await _inbox(client, other, "alice"))["pagination"]["totalCount"] == 0
    assert await _count(session, User, User.app_id == other.id) == 0
    await _accepted(client, other, send_body("alice", title="for app two"))
    assert [n["title"] for n in (await _inbox(client, creds, "alice"))["data"]] == ["for app one"]
    assert [n["title"] for n in (await _inbox(client, other, "alice"))["data"]] == ["for app two"]


# -- categories ----------------------------------------------------------------------------------


async def test_unknown_category_is_created_on_send_and_reused(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    await _accepted(client, creds, send_body("alice", notification={"category": "new_comment"}))
    await _accepted(client, creds, send_body("bob", notification={"category": "new_comment"}))
    categories = list(await session.scalars(select(Category).where(Category.app_id == creds.id)))
    assert [(c.identifier, c.name) for c in categories] == [("new_comment", "new_comment")]
    expected = {"id": str(categories[0].id), "identifier": "new_comment", "name": "new_comment"}
    assert (await _inbox(client, creds, "alice"))["data"][0]["category"] == expected
    assert (await _inbox(client, creds, "bob"))["data"][0]["category"] == expected
    listed = await client.get("/v3/categories", headers=creds.user("alice"))
    assert [c["identifier"] for c in listed.json()] == ["new_comment"]
    # The other app has its own namespace.
    assert await _count(session, Category, Category.app_id == other.id) == 0


async def test_an_existing_category_keeps_its_name(client: httpx.AsyncClient, creds: Creds) -> None:
    created = await client.post(
        "/v3/categories",
        json={"identifier": "comment", "name": "Comment"},
        headers=creds.backend(),
    )
    assert created.status_code == 200
    await _accepted(client, creds, send_body("alice", category="comment"))
    (item,) = (await _inbox(client, creds, "alice"))["data"]
    assert item["category"] == {
        "id": str(created.json()["id"]),
        "identifier": "comment",
        "name": "Comment",
    }


# -- channels and preferences --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "rows"),
    [
        (["email"], 0),
        (["email", "sms", "webPush"], 0),
        ([], 0),
        (["inApp"], 1),
        (["email", "inApp"], 1),
    ],
)
async def test_override_channels_decide_the_inbox_row(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    channels: list[str],
    rows: int,
) -> None:
    request_id = await _accepted(client, creds, send_body("alice", override={"channels": channels}))
    assert await _count(session, Notification) == rows
    # The request is stored either way, and the recipient exists.
    assert await session.get(NotificationRequest, uuid.UUID(request_id)) is not None
    assert await _count(session, User, User.app_id == creds.id) == 1
    page = await _inbox(client, creds, "alice")
    assert page["pagination"]["totalCount"] == rows
    assert page["unreadCount"] == rows


async def _set_preference(
    client: httpx.AsyncClient, creds: Creds, user: str, category_id: int, **channels: bool
) -> None:
    response = await client.patch(
        "/v3/preferences",
        json={
            "preference": [
                {
                    "categoryId": category_id,
                    "channels": [{"channel": c, "enabled": e} for c, e in channels.items()],
                }
            ]
        },
        headers=creds.user(user),
    )
    assert response.status_code == 200, response.text


async def _category(client: httpx.AsyncClient, creds: Creds, identifier: str) -> int:
    response = await client.post(
        "/v3/categories", json={"identifier": identifier}, headers=creds.backend()
    )
    assert response.status_code == 200, response.text
    category_id: int = response.json()["id"]
    return category_id


async def test_in_app_opt_out_suppresses_only_that_category(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    promo = await _category(client, creds, "promo")
    await _category(client, creds, "news")
    await _set_preference(client, creds, "alice", promo, inApp=False)

    await _accepted(client, creds, send_body("alice", "bob", title="Sale", category="promo"))
    await _accepted(client, creds, send_body("alice", "bob", title="Headline", category="news"))
    await _accepted(client, creds, send_body("alice", "bob", title="Untagged"))

    alice = await _inbox(client, creds, "alice")
    bob = await _inbox(client, creds, "bob")
    assert [n["title"] for n in alice["data"]] == ["Untagged", "Headline"]
    assert alice["unreadCount"] == 2
    assert [n["title"] for n in bob["data"]] == ["Untagged", "Headline", "Sale"]
    assert await _count(session, Notification) == 5


async def test_other_channel_opt_outs_do_not_suppress_the_inbox(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    promo = await _category(client, creds, "promo")
    await _set_preference(client, creds, "alice", promo, email=False, sms=False, inApp=True)
    await _accepted(client, creds, send_body("alice", category="promo"))
    assert (await _inbox(client, creds, "alice"))["pagination"]["totalCount"] == 1


async def test_turning_in_app_back_on_restores_delivery(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    promo = await _category(client, creds, "promo")
    await _set_preference(client, creds, "alice", promo, inApp=False)
    await _accepted(client, creds, send_body("alice", title="muted", category="promo"))
    await _set_preference(client, creds, "alice", promo, inApp=True)
    await _accepted(client, creds, send_body("alice", title="heard", category="promo"))
    assert [n["title"] for n in (await _inbox(client, creds, "alice"))["data"]] == ["heard"]


# -- tenants -------------------------------------------------------------------------------------


async def test_tenant_identifier_is_stored_from_either_place(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    await _accepted(client, creds, send_body("alice", title="top", tenantIdentifier="t1"))
    await _accepted(
        client,
        creds,
        send_body(
            "alice", title="inner", notification={"tenantIdentifier": "t2"}, tenantIdentifier="t1"
        ),
    )
    await _accepted(client, creds, send_body("alice", title="none"))
    rows = await session.execute(
        select(Notification.title, Notification.tenant_identifier).order_by(Notification.id)
    )
    assert [tuple(r) for r in rows] == [("top", "t1"), ("inner", "t2"), ("none", None)]


# -- scheduling and idempotency, as the send route answers them ----------------------------------


async def test_a_future_send_at_writes_no_inbox_row_yet(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    request_id = await _accepted(client, creds, send_body("alice", sendAt=later))
    stored = await session.get(NotificationRequest, uuid.UUID(request_id))
    assert stored is not None
    assert stored.status == "scheduled"
    assert await _count(session, Notification) == 0
    assert (await _inbox(client, creds, "alice"))["pagination"]["totalCount"] == 0


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    body = send_body("alice", "bob")
    key = {"Idempotency-Key": "order-42"}
    first = await client.post("/v3/notifications", json=body, headers={**creds.backend(), **key})
    again = await client.post("/v3/notifications", json=body, headers={**creds.backend(), **key})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert await _count(session, NotificationRequest) == 1
    assert await _count(session, Notification) == 2

    changed = await client.post(
        "/v3/notifications", json=send_body("carol"), headers={**creds.backend(), **key}
    )
    assert changed.status_code == 422
    assert changed.json()["message"] == (
        "Idempotency-Key was already used with a different request body"
    )
    # Keys are per app.
    theirs = await client.post("/v3/notifications", json=body, headers={**other.backend(), **key})
    assert theirs.status_code == 202
    assert theirs.json() != first.json()
    assert await _count(session, NotificationRequest) == 2


async def test_a_refused_send_does_not_burn_its_idempotency_key(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    key = {"Idempotency-Key": "retry-me"}
    refused = await client.post(
        "/v3/notifications",
        json={"notification": {"title": "t"}, "sendTo": {"topics": ["nope"]}},
        headers={**creds.backend(), **key},
    )
    assert refused.status_code == 400
    fixed = await client.post(
        "/v3/notifications", json=send_body("alice"), headers={**creds.backend(), **key}
    )
    assert fixed.status_code == 202
    assert await _count(session, Notification) == 1
