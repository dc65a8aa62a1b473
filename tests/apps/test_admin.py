"""The admin API: apps, their credentials and switches; health; the published OpenAPI."""

import base64
import functools
import re
from datetime import datetime

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.main import create_app
from tests.factories import Creds, load_private, rsa_pair, send_body, user_token
from tests.factories import error_message as assert_error

APP_KEYS = {
    "id",
    "name",
    "apiKey",
    "apiSecret",
    "secureMode",
    "hmacEnabled",
    "createdAt",
}


async def create(client: httpx.AsyncClient, admin: dict[str, str], name: str = "acme") -> Creds:
    r = await client.post("/admin/apps", json={"name": name}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    return Creds(body["id"], body["apiKey"], body["apiSecret"])


def public_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


ADMIN_ROUTES = [
    ("POST", "/admin/apps"),
    ("GET", "/admin/apps"),
    ("GET", "/admin/apps/{id}"),
    ("PATCH", "/admin/apps/{id}"),
    ("DELETE", "/admin/apps/{id}"),
    ("POST", "/admin/apps/{id}/rotate-secret"),
    ("POST", "/admin/apps/{id}/signing-keys"),
]


async def test_every_admin_route_needs_the_admin_token(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    spec = (await client.get("/openapi.json")).json()
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", str(creds.id), path))
        for path, ops in spec["paths"].items()
        if path.startswith("/admin")
        for method in ops
    ]
    assert {(m, p.replace(str(creds.id), "{id}")) for m, p in routes} >= set(ADMIN_ROUTES)
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": f"Bearer {creds.api_secret}"},
        creds.backend(),
    ]
    for method, url in routes:
        for headers in attempts:
            r = await client.request(method, url, json={"name": "x"}, headers=headers)
            assert_error(r, 401)
            assert isinstance(r.json()["message"], str)
    # The app is untouched by the refused calls.
    r = await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend())
    assert r.status_code == 202, r.text


async def test_create_read_and_list(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post("/admin/apps", json={"name": "  Acme  "}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= APP_KEYS
    assert body["name"] == "Acme"
    assert isinstance(body["id"], int)
    assert body["secureMode"] is False
    assert body["hmacEnabled"] is False
    assert len(body["apiKey"]) >= 16
    assert len(body["apiSecret"]) >= 32
    assert body["createdAt"].endswith("Z")
    datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00"))

    second = await create(client, admin, "second")
    assert second.api_key != body["apiKey"]
    assert second.api_secret != body["apiSecret"]

    one = await client.get(f"/admin/apps/{body['id']}", headers=admin)
    assert one.status_code == 200
    assert one.json() == body
    listed = await client.get("/admin/apps", headers=admin)
    assert listed.status_code == 200
    ids = [a["id"] for a in listed.json()]
    assert body["id"] in ids
    assert second.id in ids
    # The new credentials work at once.
    creds = Creds(body["id"], body["apiKey"], body["apiSecret"])
    r = await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend())
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": 5}, {"name": "a", "x": 1}],
)
async def test_create_refuses_bad_bodies(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object]
) -> None:
    before = len((await client.get("/admin/apps", headers=admin)).json())
    assert_error(await client.post("/admin/apps", json=body, headers=admin), 400)
    assert len((await client.get("/admin/apps", headers=admin)).json()) == before


async def test_unknown_app_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    missing = 2**63 - 1
    for method, path in ADMIN_ROUTES:
        if "{id}" in path:
            r = await client.request(method, path.format(id=missing), json={}, headers=admin)
            assert_error(r, 404)


async def test_patch_switches(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    url = f"/admin/apps/{creds.id}"
    r = await client.patch(url, json={"name": "Renamed"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed"

    r = await client.patch(url, json={"hmacEnabled": True}, headers=admin)
    assert r.json()["hmacEnabled"] is True
    assert (await client.get("/v3/notifications", headers=creds.user("u"))).status_code == 401
    assert (await client.get("/v3/notifications", headers=creds.signed("u"))).status_code == 200

    r = await client.patch(url, json={"channels": ["inApp", "webPush", "inApp"]}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == ["inApp", "webPush"]
    assert_error(await client.patch(url, json={"channels": ["carrier-pigeon"]}, headers=admin), 400)
    assert_error(await client.patch(url, json={"secureMode": "maybe"}, headers=admin), 400)
    assert_error(await client.patch(url, json={"apiSecret": "mine"}, headers=admin), 400)

    # Secure mode needs a signing key first; a refused PATCH changes nothing.
    r = await client.patch(url, json={"secureMode": True, "name": "Half"}, headers=admin)
    assert_error(r, 409)
    r = await client.get(url, headers=admin)
    assert (r.json()["secureMode"], r.json()["name"]) == (False, "Renamed")
    r = await client.post(f"{url}/signing-keys", headers=admin)
    assert r.status_code == 201, r.text
    r = await client.patch(url, json={"secureMode": True}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["secureMode"] is True
    assert (await client.get(url, headers=admin)).json()["secureMode"] is True


@pytest.mark.parametrize(
    "body",
    [{"hmacEnabled": "off"}, {"hmacEnabled": "true"}, {"secureMode": 0}, {"hmacEnabled": 1}],
)
async def test_switches_take_json_booleans_only(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, body: dict[str, object]
) -> None:
    url = f"/admin/apps/{creds.id}"
    assert (await client.patch(url, json={"hmacEnabled": True}, headers=admin)).is_success
    [field] = body
    assert assert_error(await client.patch(url, json=body, headers=admin), 400) == [
        f"{field} must be a boolean"
    ]
    r = await client.get(url, headers=admin)
    assert (r.json()["hmacEnabled"], r.json()["secureMode"]) == (True, False)


async def test_delete_removes_the_app_and_its_credentials(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, other: Creds
) -> None:
    for app in (creds, other):
        r = await client.post("/v3/notifications", json=send_body("a"), headers=app.backend())
        assert r.status_code == 202, r.text
    r = await client.delete(f"/admin/apps/{creds.id}", headers=admin)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(await client.get(f"/admin/apps/{creds.id}", headers=admin), 404)
    assert_error(await client.delete(f"/admin/apps/{creds.id}", headers=admin), 404)
    r = await client.post("/v3/notifications", json=send_body("a"), headers=creds.backend())
    assert_error(r, 401)
    assert_error(await client.get("/v3/notifications", headers=creds.user("a")), 401)
    # The other tenant is untouched.
    r = await client.get("/v3/notifications", headers=other.user("a"))
    assert r.status_code == 200
    assert r.json()["pagination"]["totalCount"] == 1


async def test_rotate_secret(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    r = await client.post(f"/admin/apps/{creds.id}/rotate-secret", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["apiKey"] == creds.api_key
    assert body["apiSecret"] != creds.api_secret
    new = Creds(creds.id, creds.api_key, body["apiSecret"])
    r = await client.post("/v3/notifications", json=send_body("a"), headers=new.backend())
    assert r.status_code == 202, r.text
    assert (await client.get(f"/admin/apps/{creds.id}", headers=admin)).json()["apiSecret"] == (
        new.api_secret
    )
    # The old secret's grace period is tests/apps/test_rotation.py's subject.


@pytest.mark.parametrize("body", [None, {}, {"publicKey": None}])
async def test_generated_signing_key_opens_the_inbox(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, body: dict[str, None] | None
) -> None:
    r = await client.post("/v3/notifications", json=send_body("alice"), headers=creds.backend())
    assert r.status_code == 202, r.text
    r = await client.post(f"/admin/apps/{creds.id}/signing-keys", json=body, headers=admin)
    assert r.status_code == 201, r.text
    pair = r.json()
    assert pair["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert pair["privateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    token = user_token(pair["privateKey"], creds.api_key, "alice")
    r = await client.get("/v3/notifications", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert [n["title"] for n in r.json()["data"]] == ["Hello"]
    # The private key is handed out once: the app only keeps the public half.
    app = (await client.get(f"/admin/apps/{creds.id}", headers=admin)).json()
    assert app["hasSigningKey"] is True
    assert pair["privateKey"] not in str(app)


@pytest.mark.parametrize("encoding", ["pem", "base64"])
async def test_registered_public_key(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, encoding: str
) -> None:
    public, private = rsa_pair()
    given = public if encoding == "pem" else base64.b64encode(public.encode()).decode()
    r = await client.post(
        f"/admin/apps/{creds.id}/signing-keys", json={"publicKey": given}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["publicKey"].strip() == public.strip()
    assert r.json().get("privateKey") is None
    token = user_token(load_private(private), creds.api_key, "alice")
    r = await client.get("/v3/notifications", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


@functools.cache
def bad_keys() -> dict[str, str]:
    small, _ = rsa_pair(1024)
    return {
        "ec": public_pem(ec.generate_private_key(ec.SECP256R1())),
        "ed25519": public_pem(ed25519.Ed25519PrivateKey.generate()),
        "rsa-1024": small,
        "garbage": "not a key",
        "truncated": rsa_pair()[0][:200],
        "private-key-pem": rsa_pair()[1],
        "empty": "",
    }


@pytest.mark.parametrize("case", list(bad_keys()))
async def test_unusable_public_keys_are_400(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, case: str
) -> None:
    r = await client.post(
        f"/admin/apps/{creds.id}/signing-keys",
        json={"publicKey": bad_keys()[case]},
        headers=admin,
    )
    assert_error(r, 400)
    app = (await client.get(f"/admin/apps/{creds.id}", headers=admin)).json()
    assert app["hasSigningKey"] is False


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready"):
        r = await client.get(path)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ok"}


async def test_openapi_declares_every_auth_mode(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    schemes = spec["components"]["securitySchemes"]
    assert {"apiKey", "apiSecret", "userId", "userSignature", "userToken", "adminToken"} <= set(
        schemes
    )
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-ENGAGESPOT-API-KEY"}
    assert schemes["apiSecret"]["name"] == "X-ENGAGESPOT-API-SECRET"
    assert schemes["userId"]["name"] == "X-ENGAGESPOT-USER-ID"
    assert schemes["userSignature"]["name"] == "X-ENGAGESPOT-USER-SIGNATURE"
    assert (schemes["userToken"]["type"], schemes["userToken"]["scheme"]) == ("http", "bearer")
    assert (schemes["adminToken"]["type"], schemes["adminToken"]["scheme"]) == ("http", "bearer")
    # Routes say what they accept: the send route lists the app credentials.
    send = spec["paths"]["/v3/notifications"]["post"]
    assert {"apiKey", "apiSecret"} <= {k for s in send["security"] for k in s}
    admin_list = spec["paths"]["/admin/apps"]["get"]
    assert {"adminToken"} == {k for s in admin_list["security"] for k in s}


async def test_docs_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger" in r.text.lower()
    assert "/openapi.json" in r.text


async def test_an_unset_admin_token_opens_nothing(
    settings: Settings, session: AsyncSession, engine: AsyncEngine
) -> None:
    app = create_app(settings.model_copy(update={"admin_token": None}))
    app.state.sessionmaker = session.info["maker"]
    app.state.engine = engine
    assert app.state.admin_token_sha256 is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
        for value in ("Bearer ", "Bearer  ", "Bearer x", "Bearer None", "Bearer null", ""):
            r = await c.get("/admin/apps", headers={"Authorization": value})
            assert_error(r, 401)
