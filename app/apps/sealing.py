"""An app's API secrets and VAPID private key at rest: sealed with the keyring of provider
secrets (app/keyring.py), bound to the app's API key, opened into memory when the row is read.

A hash would not do: HMAC user signatures and web push need the plaintext. Opening costs an
AES-GCM decryption per secret, once per read of the row; the app cache keeps opened rows.
Rows from before sealing are sealed at start (app.runtime.seal_app_secrets); until then a
plaintext value is taken as it is, so an upgrade never locks an app out."""

from app.apps.models import App
from app.keyring import PREFIX, Keyring, UndecryptableSecret


def _context(api_key: str) -> str:
    # A sealed value copied onto another app's row does not open there.
    return f"herald app {api_key}"


def is_sealed(value: str) -> bool:
    # Plaintext secrets are base64url tokens or PEM: neither starts with "v1:".
    return value.startswith(PREFIX)


def _seal(keyring: Keyring, value: str, context: str) -> str:
    return keyring.seal(value, context=context)


def _open(keyring: Keyring, value: str, context: str) -> str:
    if not is_sealed(value):
        return value
    try:
        return keyring.open(value, context=context)
    except UndecryptableSecret:
        raise UndecryptableSecret(
            "the app's secrets were sealed with another HERALD_SECRET_KEY"
        ) from None


def seal_secrets(keyring: Keyring, app: App, *, current: str, previous: str | None) -> None:
    context = _context(app.api_key)
    app.sealed_api_secret = _seal(keyring, current, context)
    app.sealed_previous_api_secret = (
        _seal(keyring, previous, context) if previous is not None else None
    )
    app.api_secret = current
    app.previous_api_secret = previous


def seal_vapid(keyring: Keyring, app: App, *, private_key: str) -> None:
    # Never opened into the app: only web push reads it (open_value, per delivery claim).
    app.sealed_vapid_private_key = _seal(keyring, private_key, _context(app.api_key))


def open_value(keyring: Keyring, api_key: str, value: str) -> str:
    """One sealed column of the app with this API key (raises UndecryptableSecret)."""
    return _open(keyring, value, _context(api_key))


def opened(keyring: Keyring, app: App) -> App:
    """Set the app's plaintext API secrets from its sealed columns; returns the app."""
    context = _context(app.api_key)
    app.api_secret = _open(keyring, app.sealed_api_secret, context)
    previous = app.sealed_previous_api_secret
    app.previous_api_secret = _open(keyring, previous, context) if previous is not None else None
    return app


def in_plaintext(app: App) -> bool:
    previous = app.sealed_previous_api_secret
    return not (
        is_sealed(app.sealed_api_secret)
        and is_sealed(app.sealed_vapid_private_key)
        and (previous is None or is_sealed(previous))
    )


def seal_row(keyring: Keyring, app: App) -> None:
    """Seal a row from before sealing in place (its values are opened first: no-op on sealed)."""
    opened(keyring, app)
    seal_secrets(keyring, app, current=app.api_secret, previous=app.previous_api_secret)
    private_key = open_value(keyring, app.api_key, app.sealed_vapid_private_key)
    seal_vapid(keyring, app, private_key=private_key)
