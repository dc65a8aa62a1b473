"""/v3/preferences: explicit rules per (category, channel), merged on PATCH."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NO_AUTH
from app.preferences.models import Preference
from tests.factories import Creds
from tests.factories import error_message as _error


async def _category(client: httpx.AsyncClient, creds: Creds, identifier: str) -> dict[str, Any]:
    response = await client.post(
        "/v3/categories",
        json={"identifier": identifier, "name": identifier.title()},
        headers=creds.backend(),
    )
    assert response.status_code == 200, response.text
    return {k: response.json()[k] for k in ("id", "name", "identifier")}


def _rules(category_id: int, **channels: bool) -> dict[str, Any]:
    return {
        "categoryId": category_id,
        "channels": [{"channel": c, "enabled": e} for c, e in channels.items()],
    }


async def _patch(
    client: httpx.AsyncClient, headers: dict[str, str], *rules: dict[str, Any]
) -> httpx.Response:
    return await client.patch("/v3/preferences", json={"preference": list(rules)}, headers=headers)


async def _get(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/v3/preferences", headers=headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Preference)) or 0)


async def test_no_rules_means_an_empty_list(client: httpx.AsyncClient, creds: Creds) -> None:
    await _category(client, creds, "comment")
    assert await _get(client, creds.user("alice")) == []


async def test_patch_sets_rules_and_answers_with_them(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    response = await _patch(
        client, creds.user("alice"), _rules(comment["id"], email=False, mobilePush=True)
    )
    assert response.status_code == 200
    expected = [
        {
            "category": comment,
            "channelPreferences": [
                {"channel": "email", "enabled": False},
                {"channel": "mobilePush", "enabled": True},
            ],
        }
    ]
    assert response.json() == expected
    assert await _get(client, creds.user("alice")) == expected
    assert await _count(session) == 2


async def test_patch_merges_per_category_and_channel(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    promo = await _category(client, creds, "promo")
    user = creds.user("alice")
    await _patch(client, user, _rules(comment["id"], email=False, sms=False))
    await _patch(client, user, _rules(comment["id"], sms=True, inApp=False))
    await _patch(client, user, _rules(promo["id"], webPush=False))

    assert await _get(client, user) == [
        {
            "category": comment,
            "channelPreferences": [
                {"channel": "email", "enabled": False},
                {"channel": "inApp", "enabled": False},
                {"channel": "sms", "enabled": True},
            ],
        },
        {"category": promo, "channelPreferences": [{"channel": "webPush", "enabled": False}]},
    ]
    assert await _count(session) == 4


async def test_one_patch_with_several_categories_and_repeats(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    promo = await _category(client, creds, "promo")
    response = await _patch(
        client,
        creds.user("alice"),
        _rules(promo["id"], email=True),
        _rules(comment["id"], email=True),
        # The last word on a (category, channel) wins.
        _rules(promo["id"], email=False),
    )
    assert response.status_code == 200
    assert response.json() == [
        {"category": comment, "channelPreferences": [{"channel": "email", "enabled": True}]},
        {"category": promo, "channelPreferences": [{"channel": "email", "enabled": False}]},
    ]


async def test_enabled_as_integer_is_accepted(client: httpx.AsyncClient, creds: Creds) -> None:
    # The legacy docs write `"enabled": 1`.
    comment = await _category(client, creds, "comment")
    response = await client.patch(
        "/v3/preferences",
        json={
            "preference": [
                {
                    "categoryId": comment["id"],
                    "channels": [
                        {"channel": "email", "enabled": 0},
                        {"channel": "sms", "enabled": 1},
                    ],
                }
            ]
        },
        headers=creds.user("alice"),
    )
    assert response.status_code == 200
    assert response.json()[0]["channelPreferences"] == [
        {"channel": "email", "enabled": False},
        {"channel": "sms", "enabled": True},
    ]


@pytest.mark.parametrize("enabled", ["false", "off", 2, None])
async def test_enabled_as_a_string_is_400(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, enabled: object
) -> None:
    comment = await _category(client, creds, "comment")
    body = {"categoryId": comment["id"], "channels": [{"channel": "email", "enabled": enabled}]}
    response = await _patch(client, creds.user("alice"), body)
    assert _error(response, 400) == ["preference.0.channels.0.enabled must be a boolean"]
    assert await _count(session) == 0


async def test_an_empty_patch_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    await _patch(client, creds.user("alice"), _rules(comment["id"], email=False))
    response = await _patch(client, creds.user("alice"))
    assert response.status_code == 200
    assert len(response.json()) == 1
    response = await _patch(client, creds.user("alice"), _rules(comment["id"]))
    assert response.status_code == 200
    assert await _count(session) == 1


async def test_rules_are_per_user(client: httpx.AsyncClient, creds: Creds) -> None:
    comment = await _category(client, creds, "comment")
    await _patch(client, creds.user("alice"), _rules(comment["id"], email=False))
    assert await _get(client, creds.user("bob")) == []
    await _patch(client, creds.user("bob"), _rules(comment["id"], email=True))
    alice = await _get(client, creds.user("alice"))
    assert alice[0]["channelPreferences"] == [{"channel": "email", "enabled": False}]


async def test_backend_reads_and_writes_a_users_rules(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    named = {"userIdentifier": "alice"}
    response = await client.patch(
        "/v3/preferences",
        json={"preference": [_rules(comment["id"], email=False)]},
        headers=creds.backend(),
        params=named,
    )
    assert response.status_code == 200
    assert await _get(client, creds.user("alice")) == response.json()
    got = await client.get("/v3/preferences", headers=creds.backend(), params=named)
    assert got.json() == response.json()


async def test_unknown_category_id_is_404_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds
) -> None:
    comment = await _category(client, creds, "comment")
    response = await _patch(
        client,
        creds.user("alice"),
        _rules(comment["id"], email=False),
        _rules(999999, email=False),
        _rules(888888, sms=False),
    )
    assert _error(response, 404) == "Unknown categoryId: 888888, 999999"
    assert await _count(session) == 0


async def test_another_apps_category_is_404(
    client: httpx.AsyncClient, session: AsyncSession, creds: Creds, other: Creds
) -> None:
    theirs = await _category(client, other, "theirs")
    response = await _patch(client, creds.user("alice"), _rules(theirs["id"], email=False))
    assert _error(response, 404) == f"Unknown categoryId: {theirs['id']}"
    assert await _count(session) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, ["preference is required"]),
        ({"preference": {}}, ["preference must be an array"]),
        ({"preference": [{"channels": []}]}, ["preference.0.categoryId is required"]),
        (
            {"preference": [{"categoryId": "one", "channels": []}]},
            ["preference.0.categoryId must be an integer"],
        ),
        (
            {"preference": [{"categoryId": 0, "channels": []}]},
            ["preference.0.categoryId must not be less than 1"],
        ),
        ({"preference": [{"categoryId": 1}]}, ["preference.0.channels is required"]),
        (
            {"preference": [{"categoryId": 1, "channels": [{"channel": "email"}]}]},
            ["preference.0.channels.0.enabled is required"],
        ),
        (
            {
                "preference": [
                    {"categoryId": 1, "channels": [{"channel": "email", "enabled": "perhaps"}]}
                ]
            },
            ["preference.0.channels.0.enabled must be a boolean"],
        ),
        (
            {"preference": [{"categoryId": 1, "channels": [{"channel": "fax", "enabled": True}]}]},
            [
                "preference.0.channels.0.channel must be one of the following values: 'inApp', "
                "'webPush', 'email', 'mobilePush', 'sms', 'whatsapp', 'slack', 'discord', "
                "'webhook' or 'chat'"
            ],
        ),
        ([], ["request body must be an object"]),
    ],
)
async def test_patch_validation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    creds: Creds,
    body: Any,
    message: list[str],
) -> None:
    response = await client.patch("/v3/preferences", json=body, headers=creds.user("alice"))
    assert _error(response, 400) == message
    assert await _count(session) == 0


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_preferences_need_a_user(
    client: httpx.AsyncClient, creds: Creds, method: str
) -> None:
    body: dict[str, list[Any]] = {"preference": []}
    assert _error(await client.request(method, "/v3/preferences", json=body), 401) == NO_AUTH
    as_backend = await client.request(method, "/v3/preferences", json=body, headers=creds.backend())
    assert _error(as_backend, 400) == [
        "userIdentifier is required when authenticating with the API secret"
    ]
