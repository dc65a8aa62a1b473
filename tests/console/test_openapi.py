"""The OpenAPI document says what Herald answers: its errors, its credentials, working examples."""

import json
import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from app.auth.dependencies import ACCEPTS, AdminDep, BackendApp, InboxUser, backend
from app.config import Settings
from app.errors import answers
from app.kit.types import DbId
from app.main import create_app
from tests.factories import Creds, send_body

ERROR = {"$ref": "#/components/schemas/Error"}
METHODS = {"get", "put", "post", "patch", "delete"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def schemes(operation: dict[str, Any]) -> list[set[str]]:
    return [set(requirement) for requirement in operation.get("security", [])]


async def test_every_error_answer_is_documented_in_the_error_shape(
    document: dict[str, Any],
) -> None:
    ops = operations(document)
    assert len(ops) >= 50
    for method, path, operation in ops:
        responses = operation["responses"]
        label = f"{method} {path}"
        # The edge refuses bad JSON and oversized requests before any route runs.
        assert {"400", "413"} <= set(responses), label
        if operation.get("security"):
            # A provider's signed callback is refused with 403, every other credential 401.
            refusal = "403" if schemes(operation) == [{"providerSignature"}] else "401"
            assert refusal in responses, label
        if any(p["in"] == "path" for p in operation.get("parameters", ())):
            assert "404" in responses, label
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR}}, label
                assert response["description"], label
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status", "statusCode", "message"}
    assert error["properties"]["message"]["anyOf"] == [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
    ]


async def test_no_422_but_where_herald_sends_one(document: dict[str, Any]) -> None:
    with_422 = {
        f"{method} {path}"
        for method, path, operation in operations(document)
        if "422" in operation["responses"]
    }
    # An Idempotency-Key reused with another body; a profile holding `identifier`.
    assert with_422 == {
        "POST /v3/notifications",
        "POST /v3/users",
        "PUT /v3/users/{identifier}",
        "PUT /v3/profile",
        "PATCH /v3/profile",
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]


async def test_route_declared_answers_are_kept(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "409" in paths["/v3/topics"]["post"]["responses"]
    assert "409" in paths["/v3/categories"]["post"]["responses"]
    assert "409" in paths["/v3/notifications"]["post"]["responses"]
    assert "409" in paths["/admin/apps/{app_id}"]["patch"]["responses"]
    assert "404" in paths["/v3/preferences"]["patch"]["responses"]  # no path id: declared
    assert "503" in paths["/ready"]["get"]["responses"]
    assert "404" not in paths["/v3/topics"]["post"]["responses"]


async def test_each_route_names_the_credentials_it_takes(document: dict[str, Any]) -> None:
    paths = document["paths"]
    app_pair = {"apiKey", "apiSecret"}
    user = {"apiKey", "userId"}
    signed = {"apiKey", "userId", "userSignature"}

    assert schemes(paths["/v3/notifications"]["post"]) == [app_pair]
    assert schemes(paths["/v3/notifications"]["get"]) == [
        user,
        signed,
        {"userToken"},
        app_pair | {"userId"},
    ]
    assert schemes(paths["/v3/notifications/{notification_id}"]["get"]) == [
        user,
        signed,
        {"userToken"},
        app_pair,
    ]
    assert schemes(paths["/v3/categories"]["get"]) == [app_pair, user, signed, {"userToken"}]
    for method, path, operation in operations(document):
        if path.startswith("/admin/"):
            assert schemes(operation) == [{"adminToken"}], f"{method} {path}"
        if path in ("/health", "/ready"):
            assert "security" not in operation
        elif path == "/metrics":
            assert schemes(operation) == [set(), {"metricsToken"}]
        elif path == "/v3/providers/{provider_id}/callback":
            assert schemes(operation) == [{"providerSignature"}]
            assert "X-Twilio-Signature" in operation["description"]
            assert set(operation["responses"]) == {"204", "400", "403", "404", "413"}
            form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
            assert "MessageStatus" in form["schema"]["properties"]
        else:
            assert "**Credentials:**" in operation["description"], f"{method} {path}"
    assert "X-ENGAGESPOT-API-SECRET" in paths["/v3/topics"]["get"]["description"]
    assert "HERALD_ADMIN_TOKEN" in paths["/admin/apps"]["get"]["description"]
    declared = set(document["components"]["securitySchemes"])
    assert declared == {
        "apiKey",
        "apiSecret",
        "userId",
        "userSignature",
        "userToken",
        "adminToken",
        "metricsToken",
        "providerSignature",
    }


class Gadget(BaseModel):
    name: str


def test_a_route_added_later_is_documented_the_same_way(settings: Settings) -> None:
    app = create_app(settings)
    later = APIRouter(prefix="/v3")

    @later.post("/gadgets/{gadget_id}", responses=answers(409))
    async def add_gadget(principal: BackendApp, gadget_id: DbId, body: Gadget) -> Gadget:
        """Add a gadget."""
        return body

    @later.get("/me/gadgets")
    async def my_gadgets(principal: InboxUser) -> list[Gadget]:
        """List the user's gadgets."""
        return []

    admin = APIRouter(prefix="/admin/gadgets", dependencies=[AdminDep])

    @admin.delete("/{gadget_id}", status_code=204)
    async def drop_gadget(gadget_id: DbId) -> None:
        """Drop a gadget."""

    app.include_router(later)
    app.include_router(admin)
    paths = app.openapi()["paths"]

    added = paths["/v3/gadgets/{gadget_id}"]["post"]
    assert set(added["responses"]) == {"200", "400", "401", "404", "409", "413"}
    assert schemes(added) == [{"apiKey", "apiSecret"}]
    assert added["description"].endswith(ACCEPTS[backend].sentence)
    mine = paths["/v3/me/gadgets"]["get"]
    assert set(mine["responses"]) == {"200", "400", "401", "413"}
    assert {"userToken"} in schemes(mine)
    dropped = paths["/admin/gadgets/{gadget_id}"]["delete"]
    assert set(dropped["responses"]) == {"204", "400", "401", "404", "413"}
    assert schemes(dropped) == [{"adminToken"}]


def _example(operation: dict[str, Any]) -> Any:
    media = operation["requestBody"]["content"]["application/json"]
    if "example" in media:
        return media["example"]
    # Named examples: "Try it out" starts with the first one.
    return next(iter(media["examples"].values()))["value"]


async def test_every_request_body_example_succeeds_as_sent(
    client: httpx.AsyncClient,
    document: dict[str, Any],
    creds: Creds,
    admin: dict[str, str],
) -> None:
    """What "Try it out" sends by default works, on every operation that takes a body."""
    user = "alice"
    sent = await client.post("/v3/notifications", json=send_body(user), headers=creds.backend())
    assert sent.status_code == 202
    inbox = await client.get("/v3/notifications", headers=creds.user(user))
    topic = await client.post("/v3/topics", json={"name": "Fixture"}, headers=creds.backend())
    category = await client.post(
        "/v3/categories", json={"identifier": "fixture"}, headers=creds.backend()
    )
    provider = await client.post(
        f"/admin/apps/{creds.id}/channels/webhook/providers",
        json={"provider": "default_webhook"},
        headers=admin,
    )
    assert provider.status_code == 201, provider.text
    values = {
        "channel": "webhook",
        "provider_id": provider.json()["id"],
        "notification_id": inbox.json()["data"][0]["id"],
        "topic_id": topic.json()["id"],
        "category_id": category.json()["id"],
        "app_id": creds.id,
        "identifier": user,
        "device_id": "device-1",
    }
    tried = []
    for method, path, operation in operations(document):
        if "application/json" not in operation.get("requestBody", {}).get("content", {}):
            continue  # no body, or a provider's signed form (a callback): nothing to try
        requirements = schemes(operation)
        if {"adminToken"} in requirements:
            headers = admin
        elif requirements[0] == {"apiKey", "apiSecret"}:
            headers = creds.backend()
        else:
            headers = creds.user(user)
        url = path.format(**values)
        response = await client.request(method, url, json=_example(operation), headers=headers)
        assert response.status_code < 300, f"{method} {url}: {response.text}"
        tried.append(f"{method} {path}")
    assert len(tried) >= 20


async def test_a_slash_in_a_text_path_id_is_the_documented_404(
    client: httpx.AsyncClient, document: dict[str, Any], creds: Creds
) -> None:
    assert "404" in document["paths"]["/v3/users/{identifier}"]["put"]["responses"]
    response = await client.put("/v3/users/a%2Fb", json={}, headers=creds.backend())
    assert response.status_code == 404
    assert response.json() == {"status": "error", "statusCode": 404, "message": "Route not found"}


async def test_the_hot_routes_document_the_parts_they_read_themselves(
    document: dict[str, Any],
) -> None:
    # Their query, header and body are read by app.kit.parts, not declared to FastAPI.
    inbox = document["paths"]["/v3/notifications"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in inbox["parameters"]] == [
        (name, "query", False)
        for name in ("pageNo", "limit", "filter", "category", "tenantIdentifier", "userIdentifier")
    ]
    limits = {p["name"]: p["schema"] for p in inbox["parameters"]}
    assert (limits["limit"]["minimum"], limits["limit"]["maximum"]) == (1, 100)
    assert limits["filter"]["anyOf"][0]["enum"] == ["unread", "read", "interacted"]

    send = document["paths"]["/v3/notifications"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in send["parameters"]] == [
        ("Idempotency-Key", "header", False)
    ]
    assert "x-herald-components" not in send
    media = send["requestBody"]["content"]["application/json"]
    assert send["requestBody"]["required"] is True
    assert media["schema"] == {"$ref": "#/components/schemas/SendRequest"}
    assert media["example"]["sendTo"] == {"recipients": ["alice"]}
    components = document["components"]["schemas"]
    sent = components["SendRequest"]
    assert sent["required"] == ["notification"]
    # Every schema it refers to is in the document.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(sent)))
    assert refs
    assert refs <= set(components), refs - set(components)
