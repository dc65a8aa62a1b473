"""Secrets at rest (provider secrets, app API secrets, VAPID private keys): AES-256-GCM under
a key derived from HERALD_SECRET_KEY.

Without HERALD_SECRET_KEY, the embedded start (no HERALD_DATABASE_URL) generates a key once
into the data dir (mode 0600). A deployment on an external database must set the key itself,
the same on every replica: a generated file would differ per machine."""

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings
from app.errors import Conflict

PREFIX = "v1:"
KEY_FILE = "secret-key"


class NoSecretKey(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Provider secrets need HERALD_SECRET_KEY (at least 32 characters, the same on every "
            "Herald process): it is only generated automatically for the embedded database"
        )


class UndecryptableSecret(Conflict):
    """A stored secret that this key cannot open (HERALD_SECRET_KEY changed?)."""


@dataclass(frozen=True)
class Keyring:
    key: bytes | None

    def seal(self, plaintext: str, *, context: str) -> str:
        if self.key is None:
            raise NoSecretKey()
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, context: str) -> str:
        if self.key is None or not sealed.startswith(PREFIX):
            raise UndecryptableSecret("no secret key to open provider secrets")
        raw = base64.b64decode(sealed[len(PREFIX) :])
        try:
            return AESGCM(self.key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise UndecryptableSecret("provider secrets were sealed with another key") from exc


def _derive(secret: str) -> bytes:
    return hashlib.sha256(b"herald provider secrets\0" + secret.encode()).digest()


def _generated(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this start won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@lru_cache(maxsize=8)
def _keyring(secret: str | None, data_dir: Path, embedded: bool) -> Keyring:
    if secret is not None:
        return Keyring(_derive(secret))
    if embedded or (data_dir / KEY_FILE).exists():
        return Keyring(_derive(_generated(data_dir)))
    return Keyring(None)


def from_secret(secret: str) -> Keyring:
    """The keyring a process started with HERALD_SECRET_KEY=`secret` uses."""
    return _keyring(secret, Path("."), False)


def keyring(settings: Settings) -> Keyring:
    """The keyring for these settings: HERALD_SECRET_KEY, else the data dir's generated key
    (created on first use when the database is the embedded one), else none."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return _keyring(secret, settings.data_dir.resolve(), settings.database_url is None)
