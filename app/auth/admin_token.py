"""The admin token: held as a SHA-256 digest, compared in constant time."""

import hashlib
import hmac


def digest(token: str) -> str:
    # A plain hash suffices: generated tokens carry 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def matches(given: str, expected_sha256: str | None) -> bool:
    if expected_sha256 is None:
        return False
    return hmac.compare_digest(digest(given).encode(), expected_sha256.encode())
