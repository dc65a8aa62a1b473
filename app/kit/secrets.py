"""Random credentials and constant-time comparison."""

import hmac
import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def random_token(length: int) -> str:
    """Return a random lowercase alphanumeric token (the shape of Engagespot keys)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def same(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in constant time."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
