"""Engine, session factory and the per-request unit of work."""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# A pooled connection unused this long is pinged before use; a busy one is not. A ping on
# every checkout (pool_pre_ping) was a round trip per request, a tenth of an inbox page's
# CPU. A connection that died while in steady use fails its next statement once, and that
# disconnect makes SQLAlchemy drop every older connection in the pool at once.
IDLE_PING_SECONDS = 2.0


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Bounded so a wedged database yields errors instead of hung requests.
        connect_args={
            "command_timeout": 60,
            "server_settings": {
                "application_name": "herald",
                # The default (4) models spinning disks; with it the planner walks the
                # primary key backwards for an inbox page instead of the user's index,
                # which degrades badly once other users' rows are newer (bench/RESULTS.md).
                "random_page_cost": "1.1",
            },
        },
    )
    event.listen(engine.sync_engine, "checkin", _checked_in)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["herald_idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("herald_idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool discards this connection and checks out another (or a new one).
        raise exc.DisconnectionError() from error


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit before the response leaves, roll back on error."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response is sent, so a failed
# commit can never be reported to the client as a success.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def _read_only(session: SessionDep) -> AsyncSession:
    """The request's session, its statements run without BEGIN and COMMIT around them.

    For routes that only read: each statement sees its own snapshot, as under READ
    COMMITTED anyway, and two round trips per request go. Declare it before the route's
    auth alias, so the connection is set up before auth's own query (on a cache miss)."""
    if isinstance(session.bind, AsyncEngine):  # tests bind one outer transaction: leave it
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


ReadSessionDep = Annotated[AsyncSession, Depends(_read_only)]
