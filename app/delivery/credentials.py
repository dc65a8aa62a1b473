"""Mobile-push credentials read from a provider's config: FCM's service-account JSON and an
APNs signing key (.p8). Checked when the provider is saved, parsed once per process.

Errors are ValueErrors whose text names what is wrong and never quotes the secret."""

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Lower-case letters, digits, hyphens; older ids may carry a domain (`example.com:project`).
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,127}$")
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105  (a URL)


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str | None
    token_uri: str


def _pem(text: str, label: str) -> bytes:
    text = text.strip()
    # Keys pasted through a JSON form often arrive with their newlines escaped.
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    if "-----BEGIN" not in text:
        body = "".join(text.split())
        text = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"
    return text.encode()


@lru_cache(maxsize=256)
def service_account(text: str) -> ServiceAccount:
    """The service account in `text` (the JSON file Firebase hands out)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError("must be the service-account JSON (it is not JSON)") from None
    if not isinstance(document, dict):
        raise ValueError("must be the service-account JSON object")
    fields = {}
    for name in ("project_id", "client_email", "private_key"):
        value = document.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"has no `{name}` (download the key of a service account)")
        fields[name] = value.strip()
    # It goes into the FCM URL's path: only what Google project ids are made of.
    if not _PROJECT.match(fields["project_id"]):
        raise ValueError("has a `project_id` that is not a Google Cloud project id")
    token_uri = document.get("token_uri") or GOOGLE_TOKEN_URI
    if not isinstance(token_uri, str) or not token_uri.startswith(("https://", "http://")):
        raise ValueError("has a `token_uri` that is not an http(s) URL")
    try:
        key = serialization.load_pem_private_key(
            _pem(fields["private_key"], "PRIVATE KEY"), password=None
        )
    except (ValueError, TypeError):
        raise ValueError("has a `private_key` that is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("has a `private_key` that is not an RSA key")
    key_id = document.get("private_key_id")
    return ServiceAccount(
        project_id=fields["project_id"],
        client_email=fields["client_email"],
        private_key=key,
        private_key_id=key_id if isinstance(key_id, str) and key_id else None,
        token_uri=token_uri,
    )


@lru_cache(maxsize=256)
def apns_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 signing key of an APNs auth key file (AuthKey_XXXXXXXXXX.p8)."""
    try:
        key = serialization.load_pem_private_key(_pem(text, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError):
        raise ValueError("must be the .p8 key file's text (a PEM private key)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("must be a P-256 (ES256) key, as in Apple's .p8 files")
    return key


def check_service_account(text: str) -> None:
    service_account(text)


def check_apns_key(text: str) -> None:
    apns_key(text)
