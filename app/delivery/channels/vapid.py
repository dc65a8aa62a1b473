"""VAPID (RFC 8292): the ES256 JWT that tells a push service which application server sends.

A token names the push service's origin (`aud`), a contact (`sub`, HERALD_VAPID_SUBJECT) and
an expiry at most 24 hours ahead. Signing costs more than encrypting a message, and push
services accept a token until it expires, so one token per (app key, origin) is reused for
hours rather than minted per request."""

import time
from collections import OrderedDict
from functools import lru_cache
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LIFETIME = 12 * 3600
# Renewed while an hour is left, so no push service sees a token about to expire.
RENEW_BEFORE = 3600
MAX_TOKENS = 10_000  # (app, origin) pairs kept per process

_tokens: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()


def origin(endpoint: str) -> str:
    """The endpoint's origin, `https://host[:port]`: the `aud` a push service checks."""
    parts = urlsplit(endpoint)
    host = parts.hostname
    if parts.scheme != "https" or not host:
        raise ValueError("the endpoint is not an https URL")
    port = parts.port
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}" if port in (None, 443) else f"https://{shown}:{port}"


@lru_cache(maxsize=1024)
def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the app's VAPID key is not an EC key")
    return key


def authorization(
    *, private_pem: str, public_key: str, audience: str, subject: str, now: float | None = None
) -> str:
    """`vapid t=<JWT>, k=<public key>` for requests to `audience`, from the cache if fresh."""
    at = time.time() if now is None else now
    key = (public_key, audience, subject)
    cached = _tokens.get(key)
    if cached is not None and cached[1] > at:
        _tokens.move_to_end(key)
        return cached[0]
    token = jwt.encode(
        {"aud": audience, "exp": int(at) + LIFETIME, "sub": subject},
        _private_key(private_pem),
        algorithm="ES256",
    )
    header = f"vapid t={token}, k={public_key}"
    _tokens[key] = (header, at + LIFETIME - RENEW_BEFORE)
    if len(_tokens) > MAX_TOKENS:
        _tokens.popitem(last=False)
    return header
