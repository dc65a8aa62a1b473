"""Cancelling a workflow run by its cancellationKey: every path variant, scope and refusal."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NO_AUTH
from app.sends.models import NotificationRequest
from app.users.models import User
from tests.factories import Creds

LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()
# The documented API page, the cURL of the v1.4 docs, and @engagespot/node (which sends
# v4 calls to its baseUrl, so /v3 when pointed at Herald).
PATHS = [
    ("PATCH", "/v4/workflows/{w}/cancel-run"),
    ("POST", "/v4/workflows/{w}/cancel-run"),
    ("PATCH", "/v4/workflows/{w}"),
    ("PATCH", "/v3/workflows/{w}/cancel-run"),
    ("POST", "/v3/workflows/{w}/cancel-run"),
    ("PATCH", "/v3/workflows/{w}"),
]


async def _scheduled(
    client: httpx.AsyncClient,
    creds: Creds,
    key: str,
    *,
    workflow: str | None = "onboarding",
    recipients: tuple[str, ...] = ("alice", "bob"),
    send_at: str | None = LATER,
) -> uuid.UUID:
    flow: dict[str, Any] = {"cancellationKey": key}
    if workflow is not None:
        flow["identifier"] = workflow
    body: dict[str, Any] = {
        "notification": {"title": "Reminder", "workflow": flow},
        "sendTo": {"recipients": list(recipients)},
    }
    if send_at is not None:
        body["sendAt"] = send_at
    response = await client.post("/v3/notifications", json=body, headers=creds.backend())
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["requestId"])


async def _cancel(
    client: httpx.AsyncClient,
    creds: Creds,
    body: Any,
    *,
    workflow: str = "onboarding",
    method: str = "PATCH",
    path: str = "/v4/workflows/{w}/cancel-run",
) -> httpx.Response:
    return await client.request(method, path.format(w=workflow), json=body, headers=creds.backend())


async def _state(session: AsyncSession, request_id: uuid.UUID) -> tuple[str, list[str]]:
    """(status, identifiers cancelled for) of a send."""
    request = await session.scalar(
        select(NotificationRequest)
        .where(NotificationRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    assert request is not None
    names = await session.scalars(
        select(User.identifier)
        .where(User.id.in_(request.cancelled_user_ids))
        .order_by(User.identifier)
    )
    return request.status, list(names)


async def test_every_path_variant_cancels_a_scheduled_run(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    for method, path in PATHS:
        request_id = await _scheduled(client, creds, f"key-{method}-{path}")
        assert await _state(session, request_id) == ("scheduled", [])
        response = await _cancel(
            client, creds, {"cancellationKey": f"key-{method}-{path}"}, method=method, path=path
        )
        assert response.status_code == 200, (method, path, response.text)
        assert response.json() == {"message": "1 runs cancelled", "cancelled": 1}
        assert await _state(session, request_id) == ("cancelled", []), (method, path)


async def test_cancel_reaches_every_pending_send_with_the_key_and_nothing_else(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    first = await _scheduled(client, creds, "cart-1")
    second = await _scheduled(client, creds, "cart-1", workflow=None)
    other_workflow = await _scheduled(client, creds, "cart-1", workflow="billing")
    other_key = await _scheduled(client, creds, "cart-2")
    theirs = await _scheduled(client, other, "cart-1")
    # Already delivered (no sendAt, small audience): nothing left to cancel.
    delivered = await _scheduled(client, creds, "cart-1", send_at=None)
    assert await _state(session, delivered) == ("done", [])

    response = await _cancel(client, creds, {"cancellationKey": "cart-1"})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "2 runs cancelled", "cancelled": 2}
    assert [(await _state(session, r))[0] for r in (first, second)] == ["cancelled"] * 2
    for untouched in (other_workflow, other_key, theirs):
        assert await _state(session, untouched) == ("scheduled", [])
    assert await _state(session, delivered) == ("done", [])

    again = await _cancel(client, creds, {"cancellationKey": "cart-1"})
    assert again.json() == {"message": "0 runs cancelled", "cancelled": 0}


async def test_cancel_for_recipients_skips_only_them(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    request_id = await _scheduled(client, creds, "cart-1", recipients=("alice", "bob", "carol"))
    response = await _cancel(
        client,
        creds,
        {"cancellationKey": "cart-1", "cancelFor": {"recipients": ["bob", "nobody"]}},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "1 runs cancelled", "cancelled": 1}
    assert await _state(session, request_id) == ("scheduled", ["bob"])
    # Later calls add to the list; an empty list cancels no one.
    for recipients in (["carol", "bob"], []):
        await _cancel(
            client, creds, {"cancellationKey": "cart-1", "cancelFor": {"recipients": recipients}}
        )
    assert await _state(session, request_id) == ("scheduled", ["bob", "carol"])


async def test_cancel_refuses_invalid_bodies_and_other_callers(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    request_id = await _scheduled(client, creds, "cart-1")
    refusals: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["cancellationKey is required"]),
        ({"cancellationKey": ""}, ["cancellationKey should not be empty"]),
        ({"cancellationKey": 7}, ["cancellationKey must be a string"]),
        ({"cancellationKey": "cart-1", "cancelFor": {}}, ["cancelFor.recipients is required"]),
        (
            {"cancellationKey": "cart-1", "cancelFor": {"recipients": "bob"}},
            ["cancelFor.recipients must be an array"],
        ),
        (
            {"cancellationKey": "cart-1", "cancelFor": {"recipients": ["x"] * 10_001}},
            ["cancelFor.recipients must contain no more than 10000 elements"],
        ),
    ]
    for body, message in refusals:
        response = await _cancel(client, creds, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["message"] == message, str(body)[:100]
    for headers, prefix in (
        ({}, NO_AUTH),
        (creds.user("alice"), "This route needs the app's credentials"),
    ):
        response = await client.patch(
            "/v4/workflows/onboarding/cancel-run",
            json={"cancellationKey": "cart-1"},
            headers=headers,
        )
        assert response.status_code == 401
        assert response.json()["message"].startswith(prefix)
    assert await _state(session, request_id) == ("scheduled", [])
