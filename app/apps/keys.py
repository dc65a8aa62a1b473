"""Key material for apps: VAPID pairs for web push and RS256 signing pairs for user tokens."""

import base64
import contextlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.errors import BadRequest


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_vapid_pair() -> tuple[str, str]:
    """Return (public, private): the public key as browsers take it (uncompressed P-256
    point, base64url) and the private key as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return _b64url(public), private


def new_signing_pair() -> tuple[str, str]:
    """Return (public PEM, private PEM) of a fresh RSA-2048 key for RS256 user tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return public.decode(), private.decode()


def normalise_public_key(text: str) -> str:
    """Validate an RSA public key (PEM, or PEM base64-encoded as Bubble users paste it)."""
    candidates = [text.strip()]
    with contextlib.suppress(ValueError):
        candidates.append(base64.b64decode(text.strip(), validate=True).decode().strip())
    for candidate in candidates:
        try:
            key = serialization.load_pem_public_key(candidate.encode())
        except (ValueError, TypeError):
            continue
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadRequest("publicKey must be an RSA key (user tokens are RS256)")
        if key.key_size < 2048:
            raise BadRequest("publicKey must be at least 2048 bits")
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    raise BadRequest("publicKey is not a PEM-encoded RSA public key")
