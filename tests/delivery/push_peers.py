"""Mobile-push protocol peers on loopback, over TLS with trustme certificates, served by
hypercorn (HTTP/2 by ALPN, HTTP/1.1 otherwise) in threads of their own:

- `FcmPeer`: Google's token endpoint (verifies the service account's RS256 JWT-bearer grant:
  signature with the test key, `iss`, `scope`, `aud`, lifetime, `kid`) and FCM's HTTP v1
  `messages:send` (a Bearer it minted, string-only `data`, errors in FCM's shape);
- `ApnsPeer`: APNs `POST /3/device/<token>`, HTTP/2 only, verifying the ES256 provider token
  with the test .p8's public key (`kid`, `iss`), echoing `apns-id`;
- `ExpoPeer`: `/--/api/v2/push/send` (tickets) and `/--/api/v2/push/getReceipts`.

Each scripts answers per token: a list of (status, headers, body) popped one per request."""

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs

import httpx
import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.asgi_thread import HypercornThread
from tests import db
from tests.delivery.conftest import add_provider, new_app
from tests.factories import Creds

Script = list[tuple[int, dict[str, str], str]]


class TlsPeer:
    """A Starlette app on 127.0.0.1 over TLS (HTTP/2 and HTTP/1.1), with a certificate from
    the test CA, in a thread with its own event loop."""

    def __init__(self, ca: trustme.CA, routes: list[Route]) -> None:
        self.app = Starlette(routes=routes)
        self.ca = ca
        self.port = 0

    def start(self) -> "TlsPeer":
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        folder = db.scratch_dir() / f"peer-{secrets.token_hex(4)}"
        folder.mkdir(parents=True, exist_ok=True)
        certfile, keyfile = folder / "cert.pem", folder / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        self._served = HypercornThread(self.app, certfile=certfile, keyfile=keyfile).start()
        self.port = self._served.port
        return self

    def url(self, path: str = "") -> str:
        return self._served.url(path)

    def stop(self) -> None:
        self._served.stop()


class ServedPeer:
    """Start, address and stop a peer whose `routes` one TlsPeer serves with `ca`'s certificate."""

    ca: trustme.CA
    server: TlsPeer

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def start(self) -> Self:
        self.server = TlsPeer(self.ca, self.routes()).start()
        return self

    def url(self, path: str = "") -> str:
        return self.server.url(path)

    def stop(self) -> None:
        self.server.stop()


def _answer(script: Script | None) -> Response | None:
    if not script:
        return None
    status, headers, body = script.pop(0)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


# -- FCM -----------------------------------------------------------------------------------


def service_account(token_uri: str, *, project: str = "herald-test") -> tuple[dict[str, Any], Any]:
    """A fresh service-account JSON (and its private key) whose `token_uri` is the peer."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"herald-{secrets.token_hex(3)}@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return account, key


def fcm_error(status: int, rpc: str, code: str | None, *, field: str | None = None) -> str:
    details: list[dict[str, Any]] = []
    if code:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    if field:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": "Invalid value"}],
            }
        )
    return json.dumps(
        {"error": {"code": status, "message": f"{rpc} (peer)", "status": rpc, "details": details}}
    )


@dataclass
class Grant:
    claims: dict[str, Any]
    header: dict[str, Any]
    token: str
    at: float


@dataclass
class FcmHit:
    project: str
    bearer: str
    body: dict[str, Any]
    http_version: str
    at: float

    @property
    def token(self) -> str:
        return str(self.body["message"]["token"])


@dataclass
class FcmPeer(ServedPeer):
    ca: trustme.CA
    # client_email -> (public key, private_key_id) of the accounts the token endpoint knows.
    accounts: dict[str, tuple[Any, str]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    hits: list[FcmHit] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    # Access tokens the peer accepts (minted here, not revoked), with their expiry.
    live: dict[str, float] = field(default_factory=dict)
    expires_in: int = 3599

    def account(self, project: str = "herald-test") -> dict[str, Any]:
        """A service account this peer's token endpoint will honour."""
        document, key = service_account(self.url("/token"), project=project)
        self.accounts[document["client_email"]] = (key.public_key(), document["private_key_id"])
        return document

    async def _token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        assertion = form.get("assertion", [""])[0]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
            public, key_id = self.accounts[unverified["iss"]]
            claims = jwt.decode(
                assertion,
                public,
                algorithms=["RS256"],
                audience=self.url("/token"),
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except (jwt.PyJWTError, KeyError):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status_code=400,
            )
        if (
            header.get("alg") != "RS256"
            or header.get("kid") != key_id
            or "https://www.googleapis.com/auth/firebase.messaging" not in claims["scope"].split()
            or not 0 < claims["exp"] - claims["iat"] <= 3600
        ):
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        token = "ya29." + secrets.token_urlsafe(24)
        self.live[token] = time.monotonic() + self.expires_in
        self.grants.append(Grant(claims, header, token, time.monotonic()))
        return JSONResponse(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    async def _send(self, request: Request) -> Response:
        # The body is read first: an HTTP/1.1 answer before it ends closes the connection.
        body = json.loads(await request.body())
        auth = request.headers.get("authorization", "")
        bearer = auth.removeprefix("Bearer ")
        if self.live.get(bearer, 0) < time.monotonic():
            return Response(fcm_error(401, "UNAUTHENTICATED", None), status_code=401)
        self.hits.append(
            FcmHit(
                request.path_params["project"],
                bearer,
                body,
                request.scope["http_version"],
                time.monotonic(),
            )
        )
        message = body.get("message") or {}
        data = message.get("data") or {}
        if any(not isinstance(v, str) for v in data.values()):
            # What FCM answers for `"data": {"n": 7}`.
            return Response(
                fcm_error(400, "INVALID_ARGUMENT", None, field="message.data[0].value"),
                status_code=400,
            )
        scripted = _answer(self.scripts.get(str(message.get("token"))))
        if scripted is not None:
            return scripted
        name = f"projects/{request.path_params['project']}/messages/{secrets.token_hex(8)}"
        return JSONResponse({"name": name})

    def to(self, token: str) -> list[FcmHit]:
        return [h for h in self.hits if h.token == token]

    def routes(self) -> list[Route]:
        return [
            Route("/token", self._token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
        ]


# -- APNs ----------------------------------------------------------------------------------


def apns_key() -> tuple[str, ec.EllipticCurvePublicKey]:
    """A .p8 file's text and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


def apns_error(status: int, reason: str) -> tuple[int, dict[str, str], str]:
    return status, {}, json.dumps({"reason": reason})


@dataclass
class ApnsHit:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    jwt: str
    claims: dict[str, Any]
    http_version: str
    at: float


@dataclass
class ApnsPeer(ServedPeer):
    ca: trustme.CA
    # KEY_ID -> (TEAM_ID, public key)
    keys: dict[str, tuple[str, Any]] = field(default_factory=dict)
    hits: list[ApnsHit] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    # Teams whose next provider token is answered 403 ExpiredProviderToken (then, always).
    expire_next: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    # Provider tokens refused (403), and why.
    refusals: list[str] = field(default_factory=list)

    def key(self, team_id: str) -> tuple[str, str]:
        """(KEY_ID, .p8 text) of a fresh key this peer trusts for `team_id`."""
        pem, public = apns_key()
        key_id = secrets.token_hex(5).upper()
        self.keys[key_id] = (team_id, public)
        return key_id, pem

    async def _push(self, request: Request) -> Response:
        if request.scope["http_version"] != "2":
            return Response("HTTP/2 only", status_code=505)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = request.path_params["token"]
        provider_token = headers.get("authorization", "").removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(provider_token)
            team_id, public = self.keys[header["kid"]]
            claims = jwt.decode(
                provider_token, public, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except (jwt.PyJWTError, KeyError):
            self.refusals.append("InvalidProviderToken")
            return Response(json.dumps({"reason": "InvalidProviderToken"}), status_code=403)
        if claims["iss"] != team_id or header.get("alg") != "ES256":
            self.refusals.append("InvalidProviderToken")
            return Response(json.dumps({"reason": "InvalidProviderToken"}), status_code=403)
        self.hits.append(
            ApnsHit(
                token,
                headers,
                json.loads(body),
                provider_token,
                claims,
                request.scope["http_version"],
                time.monotonic(),
            )
        )
        if team_id in self.expire_next:
            self.expire_next.discard(team_id)
            self.expired.add(provider_token)
        if provider_token in self.expired:
            self.refusals.append("ExpiredProviderToken")
            return Response(json.dumps({"reason": "ExpiredProviderToken"}), status_code=403)
        scripted = _answer(self.scripts.get(token))
        if scripted is not None:
            scripted.headers["apns-id"] = headers.get("apns-id", "")
            return scripted
        return Response(b"", status_code=200, headers={"apns-id": headers.get("apns-id", "")})

    def to(self, token: str) -> list[ApnsHit]:
        return [h for h in self.hits if h.token == token]

    def routes(self) -> list[Route]:
        return [Route("/3/device/{token}", self._push, methods=["POST"])]


# -- Expo ----------------------------------------------------------------------------------


@dataclass
class ExpoPeer(ServedPeer):
    ca: trustme.CA
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    # Request-level answers for /send and /getReceipts, popped one per request.
    send_script: Script = field(default_factory=list)
    receipt_script: Script = field(default_factory=list)
    # Per token: the ticket error code; the receipt error codes of its next tickets.
    ticket_errors: dict[str, str] = field(default_factory=dict)
    receipt_errors: dict[str, list[str]] = field(default_factory=dict)
    # Per token, its Expo project (default one project): a request may not mix projects.
    projects: dict[str, str] = field(default_factory=dict)
    # ticket id -> (token, receipt error or None), and the receipt requests made
    tickets: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    receipt_requests: list[list[str]] = field(default_factory=list)
    send_at: list[float] = field(default_factory=list)
    # Seconds the next /send answers take (an answer that never comes in time).
    hold: float = 0.0

    async def _send(self, request: Request) -> Response:
        self.send_at.append(time.monotonic())
        self.auth.append(request.headers.get("authorization", ""))
        messages = json.loads(await request.body())
        assert isinstance(messages, list)
        self.batches.append(messages)
        if self.hold:
            await asyncio.sleep(self.hold)
        scripted = _answer(self.send_script)
        if scripted is not None:
            return scripted
        if len(messages) > 100:
            return JSONResponse(
                {"errors": [{"code": "PUSH_TOO_MANY_NOTIFICATIONS", "message": "> 100"}]},
                status_code=400,
            )
        projects: dict[str, list[str]] = {}
        for m in messages:
            projects.setdefault(self.projects.get(m["to"], "@herald/app"), []).append(m["to"])
        if len(projects) > 1:
            error = {
                "code": "PUSH_TOO_MANY_EXPERIENCE_IDS",
                "message": "All push notification messages in the same request must be for "
                "the same project; separate your push notifications by project.",
                "details": projects,
            }
            return JSONResponse({"errors": [error]}, status_code=400)
        out: list[dict[str, Any]] = []
        for m in messages:
            token = m["to"]
            if token in self.ticket_errors:
                out.append(
                    {
                        "status": "error",
                        "message": f"{token} refused",
                        "details": {"error": self.ticket_errors[token], "expoPushToken": token},
                    }
                )
                continue
            ticket = secrets.token_hex(8)
            planned = self.receipt_errors.get(token)
            self.tickets[ticket] = (token, planned.pop(0) if planned else None)
            out.append({"status": "ok", "id": ticket})
        return JSONResponse({"data": out})

    async def _receipts(self, request: Request) -> Response:
        ids = json.loads(await request.body())["ids"]
        self.receipt_requests.append(ids)
        scripted = _answer(self.receipt_script)
        if scripted is not None:
            return scripted
        out: dict[str, Any] = {}
        for ticket in ids:
            if ticket not in self.tickets:
                continue
            _, error = self.tickets[ticket]
            out[ticket] = (
                {"status": "error", "message": f"{error} (peer)", "details": {"error": error}}
                if error
                else {"status": "ok"}
            )
        return JSONResponse({"data": out})

    def messages_to(self, token: str) -> list[dict[str, Any]]:
        return [m for b in self.batches for m in b if m["to"] == token]

    def routes(self) -> list[Route]:
        return [
            Route("/--/api/v2/push/send", self._send, methods=["POST"]),
            Route("/--/api/v2/push/getReceipts", self._receipts, methods=["POST"]),
        ]


# -- helpers for the tests -----------------------------------------------------------------


async def push_app(
    api: httpx.AsyncClient, provider: str, config: dict[str, Any]
) -> tuple[Creds, dict[str, Any]]:
    """A new app with `mobilePush` and one provider of `provider`."""
    creds = await new_app(api, ["inApp", "mobilePush"])
    created = await add_provider(api, creds, "mobilePush", {"provider": provider, "config": config})
    return creds, created


async def put_user(
    api: httpx.AsyncClient, creds: Creds, identifier: str, profile: dict[str, Any]
) -> None:
    response = await api.put(f"/v3/users/{identifier}", json=profile, headers=creds.backend())
    assert response.status_code == 200, response.text


async def profile(api: httpx.AsyncClient, creds: Creds, identifier: str) -> dict[str, Any]:
    response = await api.get(f"/v3/users/{identifier}", headers=creds.backend())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["profile"]
    return found


def by_target(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["target"]: d for d in found}
