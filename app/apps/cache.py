"""Apps by API key, cached per process, so most requests authenticate without a query.

An app changes rarely (secret rotation, security switches, deletion) and is read by every
request. The cache is correct across replicas because it is only used while this process
hears `apps_changed` notifications: a trigger on `apps` (migration 0005) sends the API key of
every updated or deleted app on commit, whoever changed it, and each process forgets that
key. While the LISTEN connection is down the cache is off, and when it comes back everything
cached is forgotten (notifications sent meanwhile are lost). Changes made through the ORM in
this process are forgotten at once too, without waiting for the notification. Entries also
expire after `ttl` seconds, as a last resort."""

import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.apps.models import App
from app.keyring import Keyring

CHANNEL = "herald_apps"


class AppCache:
    def __init__(self, keyring: Keyring, *, ttl: float = 60.0, max_size: int = 10_000):
        # Opens the secrets of the rows read into the cache (app/apps/sealing.py): entries
        # hold them opened, in this process's memory only.
        self.keyring = keyring
        self.ttl = ttl
        self.max_size = max_size
        self.enabled = False
        self._entries: dict[str, tuple[float, App]] = {}
        # Bumped by every forget: a lookup that started before one must not store its row,
        # which may predate the change.
        self._epoch = 0
        _caches.add(self)

    def get(self, api_key: str) -> App | None:
        if not self.enabled:
            return None
        entry = self._entries.get(api_key)
        if entry is None:
            return None
        expires, app = entry
        if expires < time.monotonic():
            self._entries.pop(api_key, None)
            return None
        return app

    def epoch(self) -> int:
        """Take before reading an app from the database; hand to `put`."""
        return self._epoch

    def put(self, api_key: str, app: App, epoch: int) -> None:
        if not self.enabled or epoch != self._epoch:
            return
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[api_key] = (time.monotonic() + self.ttl, app)

    def forget(self, api_key: str | None = None) -> None:
        """Drop one key, or everything."""
        self._epoch += 1
        if api_key is None:
            self._entries.clear()
        else:
            self._entries.pop(api_key, None)

    def listening(self, on: bool) -> None:
        """Follow the state of the LISTEN connection that carries the invalidations."""
        self.forget()
        self.enabled = on

    async def notified(self, payloads: list[str]) -> None:
        for api_key in payloads:
            self.forget(api_key)


_caches: "weakref.WeakSet[AppCache]" = weakref.WeakSet()
_PENDING = "herald_apps_changed"


def _forget_everywhere(api_keys: set[str]) -> None:
    for cache in list(_caches):
        for api_key in api_keys:
            cache.forget(api_key)


# ORM changes to an app in this process: forget at flush (so this transaction's own later
# reads miss), and again after commit (a concurrent request may have re-read the old row
# in between).
@event.listens_for(App, "after_update")
@event.listens_for(App, "after_delete")
def _app_changed(_mapper: Any, _connection: Any, target: App) -> None:
    _forget_everywhere({target.api_key})
    session = Session.object_session(target)
    if session is not None:
        session.info.setdefault(_PENDING, set()).add(target.api_key)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _after_transaction(session: Session, *_args: Any) -> None:
    pending: set[str] | None = session.info.pop(_PENDING, None)
    if pending:
        _forget_everywhere(pending)
