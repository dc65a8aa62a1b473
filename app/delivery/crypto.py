"""The keyring of provider secrets lives in app/keyring.py: apps seal their API secrets with it
too, and app.apps sits below app.delivery."""

from app.keyring import KEY_FILE, PREFIX, Keyring, NoSecretKey, UndecryptableSecret, keyring

__all__ = ["KEY_FILE", "PREFIX", "Keyring", "NoSecretKey", "UndecryptableSecret", "keyring"]
