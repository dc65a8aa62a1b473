"""Each way of calling Herald, and the forgeries each one must refuse."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NO_AUTH
from app.sends.models import NotificationRequest
from app.users.models import User
from tests.factories import Creds, load_private, rsa_pair, send_body, user_token

# One key pair for the app under test and one for an attacker, made once per run.
PUBLIC, _PRIVATE_PEM = rsa_pair()
STRANGER_PUBLIC, _STRANGER_PEM = rsa_pair()
PRIVATE = load_private(_PRIVATE_PEM)
STRANGER_PRIVATE = load_private(_STRANGER_PEM)


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["status"] == "error"
    assert isinstance(body["message"], str)
    assert body["message"]


def bearer(token: str, header: str = "Authorization") -> dict[str, str]:
    return {header: f"Bearer {token}"}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, object], payload: object, signature: bytes = b"") -> str:
    """A compact JWS built by hand, for tokens PyJWT refuses to make."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


async def register_key(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, public: str = PUBLIC
) -> None:
    r = await client.post(
        f"/admin/apps/{creds.id}/signing-keys", json={"publicKey": public}, headers=admin
    )
    assert r.status_code == 201, r.text


async def configure(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, **fields: object
) -> None:
    r = await client.patch(f"/admin/apps/{creds.id}", json=fields, headers=admin)
    assert r.status_code == 200, r.text


async def deliver(client: httpx.AsyncClient, creds: Creds, *users: str, title: str = "Hi") -> None:
    r = await client.post(
        "/v3/notifications", json=send_body(*users, title=title), headers=creds.backend()
    )
    assert r.status_code == 202, r.text


async def inbox_titles(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str] | None = None
) -> list[str]:
    r = await client.get("/v3/notifications", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return [n["title"] for n in r.json()["data"]]


@pytest.fixture
async def keyed(client: httpx.AsyncClient, admin: dict[str, str], creds: Creds) -> Creds:
    """`creds` with PUBLIC registered as its signing key and one notification for alice."""
    await register_key(client, admin, creds)
    await deliver(client, creds, "alice", title="for alice")
    return creds


# --- key + secret (backends) ---------------------------------------------------------------


async def test_no_credentials_is_401_with_the_seed_message(client: httpx.AsyncClient) -> None:
    for method, path in (("POST", "/v3/notifications"), ("GET", "/v3/notifications")):
        r = await client.request(method, path, json={})
        assert_401(r)
        assert r.json()["message"] == NO_AUTH


async def test_key_and_secret_send(
    client: httpx.AsyncClient, creds: Creds, session: AsyncSession
) -> None:
    await deliver(client, creds, "alice")
    assert await inbox_titles(client, creds.user("alice")) == ["Hi"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3/notifications"),
        ("POST", "/v3/users"),
        ("GET", "/v3/users/alice"),
        ("PUT", "/v3/users/alice"),
        ("POST", "/v3/categories"),
        ("GET", "/v3/notifications?userIdentifier=alice"),
    ],
)
async def test_wrong_secret_is_401(
    client: httpx.AsyncClient, creds: Creds, other: Creds, method: str, path: str
) -> None:
    body = {"identifier": "x", **send_body("alice")}
    for secret in ("wrong", creds.api_secret + "x", creds.api_secret[:-1], other.api_secret):
        headers = {"X-ENGAGESPOT-API-KEY": creds.api_key, "X-ENGAGESPOT-API-SECRET": secret}
        assert_401(await client.request(method, path, json=body, headers=headers))
        # A wrong secret never falls back to the user-id mode.
        headers["X-ENGAGESPOT-USER-ID"] = "alice"
        assert_401(await client.request(method, path, json=body, headers=headers))


async def test_unknown_key_or_missing_key_is_401(client: httpx.AsyncClient, creds: Creds) -> None:
    cases = [
        {"X-ENGAGESPOT-API-KEY": "nope", "X-ENGAGESPOT-API-SECRET": creds.api_secret},
        {"X-ENGAGESPOT-API-SECRET": creds.api_secret},
        {"X-ENGAGESPOT-API-KEY": creds.api_key},
        {"X-ENGAGESPOT-API-KEY": "", "X-ENGAGESPOT-API-SECRET": creds.api_secret},
        {"X-ENGAGESPOT-API-KEY": creds.api_secret, "X-ENGAGESPOT-API-SECRET": creds.api_key},
    ]
    for headers in cases:
        assert_401(await client.post("/v3/notifications", json=send_body("a"), headers=headers))


async def test_api_key_and_secret_aliases(client: httpx.AsyncClient, creds: Creds) -> None:
    aliases = {"x-api-key": creds.api_key, "x-api-secret": creds.api_secret}
    r = await client.post("/v3/notifications", json=send_body("alice"), headers=aliases)
    assert r.status_code == 202, r.text
    lower = {k.lower(): v for k, v in creds.backend().items()}
    r = await client.post("/v3/notifications", json=send_body("alice"), headers=lower)
    assert r.status_code == 202, r.text
    wrong = {"x-api-key": creds.api_key, "x-api-secret": "wrong"}
    assert_401(await client.post("/v3/notifications", json=send_body("alice"), headers=wrong))
    user = {"x-api-key": creds.api_key, "X-ENGAGESPOT-USER-ID": "alice"}
    assert await inbox_titles(client, user) == ["Hello", "Hello"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v3/notifications", send_body("mallory")),
        ("POST", "/v3/users", {"identifier": "mallory"}),
        ("PUT", "/v3/users/mallory", {"name": "M"}),
        ("GET", "/v3/users/alice", None),
        ("DELETE", "/v3/users/alice", None),
        ("POST", "/v3/categories", {"identifier": "mallory"}),
    ],
)
@pytest.mark.parametrize("mode", ["user-id", "hmac", "jwt", "jwt+key"])
async def test_user_credentials_are_refused_on_backend_routes(
    client: httpx.AsyncClient,
    session: AsyncSession,
    keyed: Creds,
    mode: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    headers = {
        "user-id": keyed.user("alice"),
        "hmac": keyed.signed("alice"),
        "jwt": bearer(token),
        "jwt+key": {**bearer(token), "X-ENGAGESPOT-API-KEY": keyed.api_key},
    }[mode]
    requests = (
        select(func.count())
        .select_from(NotificationRequest)
        .where(NotificationRequest.app_id == keyed.id)
    )
    requests_before = await session.scalar(requests)
    assert_401(await client.request(method, path, json=body, headers=headers))
    assert await session.scalar(requests) == requests_before
    identifiers = set(await session.scalars(select(User.identifier).where(User.app_id == keyed.id)))
    assert identifiers == {"alice"}


# --- key + user id ----------------------------------------------------------------------------


async def test_key_and_user_id_when_secure_mode_is_off(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await deliver(client, creds, "alice", "bob")
    assert await inbox_titles(client, creds.user("alice")) == ["Hi"]
    r = await client.get("/v3/profile", headers=creds.user("bob"))
    assert r.status_code == 200, r.text


async def test_secure_mode_refuses_key_and_user_id(
    client: httpx.AsyncClient, admin: dict[str, str], keyed: Creds
) -> None:
    await configure(client, admin, keyed, secureMode=True)
    for headers in (keyed.user("alice"), keyed.signed("alice")):
        assert_401(await client.get("/v3/notifications", headers=headers))
        assert_401(await client.get("/v3/preferences", headers=headers))
        assert_401(await client.post("/v3/sdk/connect", headers=headers))
    # The token still opens the inbox, and the backend still sends and reads.
    token = user_token(PRIVATE, keyed.api_key, "alice")
    assert await inbox_titles(client, bearer(token)) == ["for alice"]
    await deliver(client, keyed, "alice", title="second")
    titles = await inbox_titles(client, keyed.backend(), {"userIdentifier": "alice"})
    assert titles == ["second", "for alice"]
    # Switching it off again restores the plain mode.
    await configure(client, admin, keyed, secureMode=False)
    assert await inbox_titles(client, keyed.user("alice")) == ["second", "for alice"]


# --- legacy HMAC ------------------------------------------------------------------------------


def signature(secret: str, user: str) -> str:
    """base64(HMAC-SHA256(key=api secret, msg=user id)), as the contract §1.4 defines it."""
    return base64.b64encode(
        hmac.new(secret.encode(), user.encode(), hashlib.sha256).digest()
    ).decode()


async def test_hmac_required_when_enabled(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds, other: Creds
) -> None:
    await deliver(client, creds, "alice")
    await configure(client, admin, creds, hmacEnabled=True)
    good = {
        **creds.user("alice"),
        "X-ENGAGESPOT-USER-SIGNATURE": signature(creds.api_secret, "alice"),
    }
    assert good == creds.signed("alice")
    assert await inbox_titles(client, good) == ["Hi"]

    digest = hmac.new(creds.api_secret.encode(), b"alice", hashlib.sha256)
    refused = [
        None,  # missing
        "",
        "undefined",  # what @engagespot/core sends when no signature is set
        "null",
        signature(creds.api_secret, "bob"),  # another user's signature
        signature(other.api_secret, "alice"),  # another app's secret
        signature(creds.api_key, "alice"),  # keyed with the API key instead of the secret
        digest.hexdigest(),  # hex, not base64
        signature(creds.api_secret, "alice")[:-2],
        "!!!not base64!!!",
    ]
    for value in refused:
        headers = creds.user("alice")
        if value is not None:
            headers["X-ENGAGESPOT-USER-SIGNATURE"] = value
        assert_401(await client.get("/v3/notifications", headers=headers))


async def test_undefined_signature_is_absent_when_hmac_is_off(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    await deliver(client, creds, "alice")
    headers = {**creds.user("alice"), "X-ENGAGESPOT-USER-SIGNATURE": "undefined"}
    assert await inbox_titles(client, headers) == ["Hi"]


async def test_hmac_follows_secret_rotation(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    await configure(client, admin, creds, hmacEnabled=True)
    old = creds.signed("alice")
    assert (await client.get("/v3/notifications", headers=old)).status_code == 200
    r = await client.post(f"/admin/apps/{creds.id}/rotate-secret", headers=admin)
    assert r.status_code == 200, r.text
    assert_401(await client.get("/v3/notifications", headers=old))
    rotated = Creds(creds.id, creds.api_key, r.json()["apiSecret"])
    assert (
        await client.get("/v3/notifications", headers=rotated.signed("alice"))
    ).status_code == 200


# --- RS256 user tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Authorization", "Authentication"])
async def test_token_opens_the_inbox(client: httpx.AsyncClient, keyed: Creds, header: str) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    assert await inbox_titles(client, bearer(token, header)) == ["for alice"]
    r = await client.get("/v3/notifications", headers={header: f"bearer {token}"})
    assert r.status_code == 200, r.text
    # Another user's token sees another inbox.
    bob = user_token(PRIVATE, keyed.api_key, "bob")
    assert await inbox_titles(client, bearer(bob, header)) == []


async def test_token_with_matching_api_key_header(client: httpx.AsyncClient, keyed: Creds) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    headers = {**bearer(token), "X-ENGAGESPOT-API-KEY": keyed.api_key}
    assert await inbox_titles(client, headers) == ["for alice"]


async def test_token_apikey_differing_from_header_is_401(
    client: httpx.AsyncClient, keyed: Creds, other: Creds
) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    for key in (other.api_key, "unknown", keyed.api_key + "x"):
        assert_401(
            await client.get(
                "/v3/notifications", headers={**bearer(token), "X-ENGAGESPOT-API-KEY": key}
            )
        )


async def test_token_user_wins_over_user_id_header(client: httpx.AsyncClient, keyed: Creds) -> None:
    await deliver(client, keyed, "bob", title="for bob")
    token = user_token(PRIVATE, keyed.api_key, "alice")
    headers = {**bearer(token), **keyed.user("bob")}
    assert await inbox_titles(client, headers) == ["for alice"]


async def test_token_expiry(client: httpx.AsyncClient, keyed: Creds) -> None:
    now = int(time.time())
    fresh = user_token(PRIVATE, keyed.api_key, "alice", iat=now, exp=now + 600)
    assert await inbox_titles(client, bearer(fresh)) == ["for alice"]
    expired = user_token(PRIVATE, keyed.api_key, "alice", iat=now - 900, exp=now - 300)
    r = await client.get("/v3/notifications", headers=bearer(expired))
    assert_401(r)
    assert "expired" in r.json()["message"]
    early = user_token(PRIVATE, keyed.api_key, "alice", nbf=now + 600)
    assert_401(await client.get("/v3/notifications", headers=bearer(early)))


async def test_token_without_exp_never_expires(client: httpx.AsyncClient, keyed: Creds) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    assert "exp" not in jwt.decode(token, options={"verify_signature": False})
    assert await inbox_titles(client, bearer(token)) == ["for alice"]


async def test_token_for_an_app_without_signing_key_is_401(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    assert_401(
        await client.get(
            "/v3/notifications", headers=bearer(user_token(PRIVATE, creds.api_key, "alice"))
        )
    )


async def test_old_key_stops_working_after_a_new_one_is_registered(
    client: httpx.AsyncClient, admin: dict[str, str], keyed: Creds
) -> None:
    token = user_token(PRIVATE, keyed.api_key, "alice")
    assert (await client.get("/v3/notifications", headers=bearer(token))).status_code == 200
    await register_key(client, admin, keyed, STRANGER_PUBLIC)
    assert_401(await client.get("/v3/notifications", headers=bearer(token)))
    renewed = user_token(STRANGER_PRIVATE, keyed.api_key, "alice")
    assert await inbox_titles(client, bearer(renewed)) == ["for alice"]


def forged_tokens(api_key: str, other_key: str) -> dict[str, str]:
    claims = {"sub": "user:alice", "apiKey": api_key}
    head, body, sig = user_token(PRIVATE, api_key, "alice").split(".")
    bob_body = b64url(json.dumps({"sub": "user:bob", "apiKey": api_key}).encode())
    hs_input = ".".join(
        b64url(json.dumps(part).encode()) for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    hs_sig = b64url(hmac.new(PUBLIC.encode(), hs_input.encode(), hashlib.sha256).digest())
    return {
        "signed by another key": user_token(STRANGER_PRIVATE, api_key, "alice"),
        "alg none": forge({"alg": "none", "typ": "JWT"}, claims),
        "alg None": forge({"alg": "None"}, claims),
        "alg none with a signature": forge({"alg": "none"}, claims, b"sig"),
        "HS256 keyed with the public PEM": f"{hs_input}.{hs_sig}",
        "HS256 keyed with the API key": jwt.encode(claims, api_key + "-" * 32, algorithm="HS256"),
        "RS512 instead of RS256": jwt.encode(claims, PRIVATE, algorithm="RS512"),
        "PS256 instead of RS256": jwt.encode(claims, PRIVATE, algorithm="PS256"),
        "payload swapped to bob": f"{head}.{bob_body}.{sig}",
        "signature stripped": f"{head}.{body}.",
        "sub without user: prefix": jwt.encode(
            {"sub": "alice", "apiKey": api_key}, PRIVATE, "RS256"
        ),
        "sub user: with no id": jwt.encode({"sub": "user:", "apiKey": api_key}, PRIVATE, "RS256"),
        "sub missing": jwt.encode({"apiKey": api_key}, PRIVATE, "RS256"),
        "apiKey missing": jwt.encode({"sub": "user:alice"}, PRIVATE, "RS256"),
        "apiKey not a string": jwt.encode({"sub": "user:alice", "apiKey": 42}, PRIVATE, "RS256"),
        "apiKey of another app": user_token(PRIVATE, other_key, "alice"),
        "apiKey unknown": user_token(PRIVATE, "no-such-key", "alice"),
        "payload is a list": forge({"alg": "RS256"}, ["sub", "apiKey"]),
        "garbage": "garbage",
        "three dots": "a.b.c",
        "empty parts": "..",
        "empty object parts": "e30.e30.",
        "not base64": "!!!.@@@.###",
        "huge": "a" * 8000 + "." + "b" * 4000 + ".c",
    }


@pytest.mark.parametrize("case", list(forged_tokens("k", "o")), ids=lambda c: c.replace(" ", "-"))
@pytest.mark.parametrize("header", ["Authorization", "Authentication"])
async def test_forged_tokens_are_401(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    keyed: Creds,
    other: Creds,
    case: str,
    header: str,
) -> None:
    await register_key(client, admin, other, STRANGER_PUBLIC)
    token = forged_tokens(keyed.api_key, other.api_key)[case]
    assert_401(await client.get("/v3/notifications", headers=bearer(token, header)))
    assert_401(await client.post("/v3/sdk/connect", headers=bearer(token, header)))


async def test_apikey_claim_of_another_app_signed_by_that_apps_key_reads_only_that_app(
    client: httpx.AsyncClient, admin: dict[str, str], keyed: Creds, other: Creds
) -> None:
    # The attacker holds only their own app's private key: claiming the victim's apiKey fails,
    # and a token for their own app shows their own (empty) inbox, never the victim's.
    await register_key(client, admin, other, STRANGER_PUBLIC)
    assert_401(
        await client.get(
            "/v3/notifications",
            headers=bearer(user_token(STRANGER_PRIVATE, keyed.api_key, "alice")),
        )
    )
    own = user_token(STRANGER_PRIVATE, other.api_key, "alice")
    assert await inbox_titles(client, bearer(own)) == []


async def test_empty_bearer_is_no_auth(client: httpx.AsyncClient) -> None:
    for value in ("Bearer", "Bearer ", "Bearer undefined", "Basic abc", "Token x"):
        for header in ("Authorization", "Authentication"):
            assert_401(await client.get("/v3/notifications", headers={header: value}))


async def test_token_from_a_clock_slightly_ahead_is_accepted(
    client: httpx.AsyncClient, keyed: Creds
) -> None:
    # jsonwebtoken stamps `iat` with the signing machine's clock, which may run ahead.
    ahead = int(time.time()) + 30
    token = user_token(PRIVATE, keyed.api_key, "alice", iat=ahead)
    assert await inbox_titles(client, bearer(token)) == ["for alice"]
