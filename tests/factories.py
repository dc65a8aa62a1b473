"""Small typed factories and header builders."""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import service as apps_service
from app.apps.models import App
from bench.server import KEYRING, SECRET_KEY

# The key of the test settings and of every server the tests launch (bench.server.herald):
# apps made here open there.
TEST_SECRET_KEY = SECRET_KEY
TEST_KEYRING = KEYRING


@dataclass(frozen=True)
class Creds:
    id: int
    api_key: str
    api_secret: str

    def backend(self) -> dict[str, str]:
        return {"X-ENGAGESPOT-API-KEY": self.api_key, "X-ENGAGESPOT-API-SECRET": self.api_secret}

    def user(self, identifier: str) -> dict[str, str]:
        return {"X-ENGAGESPOT-API-KEY": self.api_key, "X-ENGAGESPOT-USER-ID": identifier}

    def signed(self, identifier: str) -> dict[str, str]:
        digest = hmac.new(self.api_secret.encode(), identifier.encode(), hashlib.sha256).digest()
        return {
            **self.user(identifier),
            "X-ENGAGESPOT-USER-SIGNATURE": base64.b64encode(digest).decode(),
        }


async def make_app(session: AsyncSession, name: str = "test") -> tuple[App, Creds]:
    app = await apps_service.create(session, TEST_KEYRING, name=name)
    return app, Creds(app.id, app.api_key, app.api_secret)


def send_body(
    *recipients: str | dict[str, object], title: str = "Hello", **extra: object
) -> dict[str, object]:
    notification: dict[str, object] = {"title": title}
    notification.update(extra.pop("notification", {}) or {})  # type: ignore[call-overload]
    return {"notification": notification, "sendTo": {"recipients": list(recipients)}, **extra}


def rsa_pair(bits: int = 2048) -> tuple[str, str]:
    """Return (public PEM, private PEM) of a fresh RSA key, as an app's signing key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return public.decode(), private.decode()


def user_token(
    private_key: str | rsa.RSAPrivateKey, api_key: str, identifier: str, **claims: object
) -> str:
    """An RS256 user token as @engagespot/node's generateUserToken makes it (plus `claims`).

    Pass a loaded key when signing many tokens: loading a PEM re-validates the RSA key."""
    payload: dict[str, object] = {"sub": f"user:{identifier}", "apiKey": api_key, **claims}
    return jwt.encode(payload, private_key, algorithm="RS256")


def load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def error_message(response: httpx.Response, status: int) -> Any:
    """Assert `response` is an error in Engagespot's shape with `status`; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["statusCode"] == status
    assert isinstance(body["message"], str | list)
    assert body["message"]
    return body["message"]
