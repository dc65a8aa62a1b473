"""Verification of user tokens (RS256 JWT) and legacy HMAC signatures."""

import base64
import hashlib
import hmac

import jwt

from app.errors import Unauthorized
from app.kit.secrets import same

# Tokens are stamped (`iat`, `exp`, `nbf`) by the customer's backend, whose clock may differ
# from ours: without slack, a token signed a second "in the future" is refused.
CLOCK_SKEW_SECONDS = 60


def unverified_api_key(token: str) -> str:
    """Read the `apiKey` claim to find the app whose key must verify the token."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid user token") from exc
    api_key = claims.get("apiKey")
    if not isinstance(api_key, str) or not api_key:
        raise Unauthorized("Invalid user token: apiKey claim is missing")
    return api_key


def verified_user(token: str, public_key: str) -> str:
    """Verify an RS256 token and return the user identifier from `sub: "user:<id>"`."""
    try:
        # RS256 only: no "none", no HMAC algorithms keyed with the public key.
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["RS256"],
            options={"require": ["sub"], "verify_aud": False},
            leeway=CLOCK_SKEW_SECONDS,
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("User token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid user token") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith("user:") or len(sub) == len("user:"):
        raise Unauthorized('Invalid user token: sub must be "user:<identifier>"')
    return sub[len("user:") :]


def user_signature(api_secret: str, user_id: str) -> str:
    digest = hmac.new(api_secret.encode(), user_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(api_secret: str, user_id: str, signature: str) -> bool:
    return same(user_signature(api_secret, user_id), signature)
