"""Alembic environment: async engine; the URL comes from the caller or HERALD_DATABASE_URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import get_settings
from app.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    if not url:
        raise SystemExit("no database URL: set HERALD_DATABASE_URL or run `herald migrate`")
    return str(url)


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PgQueuer's tables are installed by a migration but described by PgQueuer, not our models.
    return not (type_ == "table" and reflected and (name or "").startswith("pgqueuer"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
