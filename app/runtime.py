"""Start-up chores shared by the CLI commands: database, migrations, admin token, first app.

Several replicas may run these at once on one database: each chore is safe to race."""

import asyncio
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from app.apps import repository as apps_repository
from app.apps import sealing
from app.apps import service as apps_service
from app.apps.models import App
from app.auth import admin_token as admin_tokens
from app.auth import repository as auth_repository
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.embedded import EmbeddedPostgres
from app.keyring import Keyring, UndecryptableSecret, keyring
from app.kit import locks
from app.ops.problems import ConfigError

log = logging.getLogger("herald")
PACKAGE = Path(__file__).resolve().parent


@dataclass
class Database:
    url: str
    embedded: EmbeddedPostgres | None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def database(settings: Settings) -> Database:
    if settings.database_url:
        return Database(settings.database_url, None)
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        url = embedded.start()
    except Exception as exc:  # pgserver fails in many ways; each is a data-dir problem here
        embedded.stop()
        raise ConfigError(
            f"HERALD_DATA_DIR: cannot start the embedded PostgreSQL in {embedded.pgdata}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return Database(url, embedded)


def migrations_dir() -> Path:
    """The Alembic scripts: shipped inside the package, or at the top of a checkout."""
    # The wheel maps the checkout's migrations/ to app/_migrations (pyproject.toml); an
    # editable install imports app/ from the checkout, where they stay beside it.
    for candidate in (PACKAGE / "_migrations", PACKAGE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"Herald's migrations are missing from {PACKAGE}: reinstall the package")


def alembic_config(url: str) -> Config:
    """The Alembic configuration `herald migrate` runs with; it reads no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = url
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (Alembic logs each step it runs).

    Concurrent callers on one database take turns (migrations/env.py holds an advisory
    lock): the first migrates, the others then find the schema at head."""
    try:
        command.upgrade(alembic_config(url), "head")
    except CommandError as exc:
        raise ConfigError(_migration_problem(exc)) from None


def _migration_problem(exc: CommandError) -> str:
    unknown = re.search(r"Can't locate revision identified by '([^']+)'", str(exc))
    if unknown is None:
        return f"the migrations failed: {str(exc).splitlines()[0]}"
    # An older Herald started on a database a newer one migrated: it must not serve it.
    return (
        f"the database schema is at revision {unknown.group(1)!r}, which this Herald does "
        f"not know (its newest is {head_revision()!r}): a newer Herald migrated it; run "
        "that version or a later one"
    )


def scripts(location: Path | None = None) -> ScriptDirectory:
    """The migration scripts `herald migrate` applies (reading them imports each one)."""
    return ScriptDirectory(str(location or migrations_dir()))


def head_revision() -> str:
    """The newest revision the shipped migrations reach."""
    return scripts().get_current_head() or "base"


@dataclass
class AdminToken:
    sha256: str
    # None when another replica made the token: this one knows only its digest.
    value: str | None
    path: Path | None
    created: bool = False
    from_env: bool = False


def admin_token(settings: Settings, url: str) -> AdminToken:
    """HERALD_ADMIN_TOKEN, or the token all replicas share through the database.

    The first replica on an empty database generates it, keeps it in the data dir (mode
    0600) and reports it as created; the others accept the digest stored beside it."""
    if settings.admin_token is not None:
        value = settings.admin_token.get_secret_value()
        return AdminToken(admin_tokens.digest(value), value, None, from_env=True)
    path = settings.data_dir / "admin-token"
    try:
        kept = path.read_text().strip() if path.exists() else None
    except OSError as exc:
        raise ConfigError(f"HERALD_DATA_DIR: cannot read {path}: {exc.strerror or exc}") from None
    return asyncio.run(_shared_admin_token(url, path, kept or None))


async def _shared_admin_token(url: str, path: Path, kept: str | None) -> AdminToken:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            stored = await auth_repository.admin_token_sha256(session)
            if stored is None:
                # A token file from before tokens lived in the database is adopted as is.
                token = kept or secrets.token_urlsafe(32)
                sha256 = admin_tokens.digest(token)
                if await auth_repository.claim_admin_token(session, token_sha256=sha256):
                    if kept is None:
                        # Inside the transaction: a file that cannot be written stores nothing.
                        await asyncio.to_thread(_write_token, path, token)
                    return AdminToken(sha256, token, path, created=kept is None)
                stored = await auth_repository.admin_token_sha256(session)
                assert stored is not None
    finally:
        await engine.dispose()
    if kept is not None and admin_tokens.matches(kept, stored):
        return AdminToken(stored, kept, path)
    if kept is not None:
        log.warning("%s holds a token this database does not accept; using the database's", path)
    return AdminToken(stored, None, None)


def _write_token(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")


SEAL_LOCK = "herald.seal_app_secrets"


def require_secret_key(settings: Settings) -> Keyring:
    """The keyring, or one line and exit 78 when there is no key to open the apps' secrets
    (checked before anything touches the database)."""
    ring = keyring(settings)
    if ring.key is None:
        raise ConfigError(
            "HERALD_SECRET_KEY: required with HERALD_DATABASE_URL (at least 32 characters, "
            "the same on every Herald process): app API secrets are encrypted with it"
        )
    return ring


def seal_app_secrets(settings: Settings, url: str) -> Keyring:
    """The keyring that opens the apps' secrets, after sealing any still in plaintext.

    A missing key, or one that does not open what is stored, is one line and exit 78 here,
    before the process serves anything: every app would fail to authenticate otherwise."""
    ring = require_secret_key(settings)
    sealed = asyncio.run(_seal_app_secrets(url, ring))
    if sealed:
        log.info("sealed the secrets of %d app(s) stored in plaintext", sealed)
    return ring


async def _seal_app_secrets(url: str, ring: Keyring) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            probe = await apps_repository.any_sealed(session)
            try:
                if probe is not None:
                    sealing.opened(ring, probe)
            except UndecryptableSecret:
                raise ConfigError(
                    "HERALD_SECRET_KEY: does not open the app secrets stored in the database "
                    "(they were sealed with another key: start with that one)"
                ) from None
            # Replicas starting together on an upgraded database: one seals, the others
            # then find nothing left (the rows are also locked FOR UPDATE).
            await locks.xact_lock(session, SEAL_LOCK)
            leftovers = await apps_repository.in_plaintext(session)
            for app in leftovers:
                sealing.seal_row(ring, app)
            await session.flush()
            return len(leftovers)
    finally:
        await engine.dispose()


async def _first_app(url: str, ring: Keyring) -> App | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            # Replicas starting together would each see no app and each create one.
            await locks.xact_lock(session, "herald.default_app")
            if await apps_repository.all_apps(session):
                return None
            return await apps_service.create(session, ring, name="default")
    finally:
        await engine.dispose()


def ensure_default_app(url: str, ring: Keyring) -> App | None:
    """Create the app `default` when the database has none; return it if created."""
    return asyncio.run(_first_app(url, ring))


async def _create_app(url: str, ring: Keyring, name: str) -> App:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            return await apps_service.create(session, ring, name=name)
    finally:
        await engine.dispose()


def create_app_record(url: str, ring: Keyring, name: str) -> App:
    return asyncio.run(_create_app(url, ring, name))
