"""Start-up chores shared by the CLI commands: database, migrations, admin token, first app."""

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.apps import repository as apps_repository
from app.apps import service as apps_service
from app.apps.models import App
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.embedded import EmbeddedPostgres

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
    return Database(embedded.start(), embedded)


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
    command.upgrade(alembic_config(url), "head")


@dataclass
class AdminToken:
    value: str
    path: Path | None
    created: bool


def admin_token(settings: Settings) -> AdminToken:
    """HERALD_ADMIN_TOKEN, or a token generated once and kept in the data dir (mode 0600)."""
    if settings.admin_token is not None:
        return AdminToken(settings.admin_token.get_secret_value(), None, False)
    path = settings.data_dir / "admin-token"
    if path.exists():
        return AdminToken(path.read_text().strip(), path, False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return AdminToken(token, path, True)


async def _first_app(url: str) -> App | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            if await apps_repository.all_apps(session):
                return None
            return await apps_service.create(session, name="default")
    finally:
        await engine.dispose()


def ensure_default_app(url: str) -> App | None:
    """Create the app `default` when the database has none; return it if created."""
    return asyncio.run(_first_app(url))


async def _create_app(url: str, name: str) -> App:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            return await apps_service.create(session, name=name)
    finally:
        await engine.dispose()


def create_app_record(url: str, name: str) -> App:
    return asyncio.run(_create_app(url, name))
