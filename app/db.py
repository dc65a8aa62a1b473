"""Engine, session factory and the per-request unit of work."""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.faults import closed_under, disconnected
from app.read_pool import IDLE_PING_SECONDS, ReadPool

log = logging.getLogger("herald.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# IDLE_PING_SECONDS (app.read_pool): a pooled connection unused that long is pinged before
# use. Here, a connection that died while in steady use fails its next statement once, as a
# 503, and that disconnect makes SQLAlchemy drop every older connection in the pool.

# How every connection of Herald's is opened (the engine's, and app.read_pool's). Bounded so
# a wedged database yields errors instead of hung requests.
CONNECT_ARGS: dict[str, Any] = {
    "timeout": 10,
    "command_timeout": 60,
    "server_settings": {
        "application_name": "herald",
        # The default (4) models spinning disks; with it the planner walks the primary key
        # backwards for an inbox page instead of the user's index, which degrades badly once
        # other users' rows are newer (bench/RESULTS.md).
        "random_page_cost": "1.1",
    },
}


def make_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 30.0) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # No overflow: an overflow connection is closed as it returns to a full pool, so
        # under a steady load past the pool size nearly every request opened one, a
        # backend start for PostgreSQL (a third of its CPU per inbox page at 32
        # connections). Past the pool, a request waits for a connection instead.
        max_overflow=0,
        # How long a request waits for a pooled connection before it answers 503.
        pool_timeout=pool_timeout,
        connect_args=CONNECT_ARGS,
    )
    event.listen(engine.sync_engine, "handle_error", _dead_connections)
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
        raise DisconnectionError() from error


def _dead_connections(context: ExceptionContext) -> None:
    # SQLAlchemy's asyncpg dialect calls a connection dead only once asyncpg has read the
    # close. A server that shuts down sends its FATAL message first, and the next statement
    # can fail in between (57P01, or asyncpg's protocol-state error): mark those dead too,
    # so the connection is discarded and, as for any disconnect, the pool replaces every
    # connection older than this one instead of handing them out to fail in turn.
    if not context.is_disconnect and disconnected(context.original_exception):
        context.is_disconnect = True


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit before the response leaves, roll back on error."""
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


@asynccontextmanager
async def unit_of_work(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session committed at the end of the block, or rolled back when it raises: the
    request's unit of work (`get_session`), for routes that open it themselves."""
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await _rollback(session)
            raise
        else:
            # A failure here is answered by the error handler: 503 for a database fault. A
            # connection lost during COMMIT leaves the outcome unknown; the client retries
            # with its Idempotency-Key (README, Operations). A session that never began a
            # transaction has nothing to commit (commit would begin one, to end it).
            if session.in_transaction():
                await session.commit()


async def _rollback(session: AsyncSession) -> None:
    try:
        await session.rollback()
    except Exception as exc:
        # The connection died with the request: the rollback has nothing left to do,
        # and the request's own error is the one to answer with.
        log.debug("rollback after a failed request failed too: %r", exc)


# scope="function": the commit happens before the response is sent, so a failed
# commit can never be reported to the client as a success.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# The pg_advisory_lock key migrations/env.py holds while it migrates. Advisory locks are
# per database, so one constant serves every Herald database on a server.
MIGRATION_LOCK = 0x4845_5241_4C44  # "HERALD"


@asynccontextmanager
async def read_only(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only: its statements run without BEGIN and COMMIT.

    Each statement sees its own snapshot, as under READ COMMITTED anyway, and two round
    trips per request go."""
    async with maker() as session:
        try:
            if isinstance(session.bind, AsyncEngine):  # tests bind one outer transaction
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session
        except BaseException:
            await _rollback(session)
            raise
        # No COMMIT: a read wrote nothing, and closing the session ends what little
        # transaction state SQLAlchemy keeps; its commit path was work per page for nothing.


@asynccontextmanager
async def reading(
    maker: async_sessionmaker[AsyncSession], pool: ReadPool | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """The driver's connection under a pooled one, for the one statement of a hot read.

    Neither a session nor SQLAlchemy's statement path: on the inbox page, creating and
    closing a session, then the execution context and the cursor adapter, cost the server
    more than PostgreSQL spent on the statement. Out of any transaction (SQLAlchemy begins
    one only for its own statements), so no BEGIN or ROLLBACK goes with it. The connection
    is held while the block runs, not for the whole request, so requests waiting for the
    event loop do not hold the pool. A connection found dead is discarded, as the engine's
    handle_error hook does for SQLAlchemy's statements; the error itself answers 503.

    With `pool` (the app's ReadPool) the connection is one of its own, not SQLAlchemy's:
    a checkout there cost 80 µs of CPU, an eighth of an inbox page."""
    bind = maker.kw.get("bind")
    if pool is not None and not isinstance(bind, AsyncConnection):
        async with pool.connection() as connection:
            yield connection
        return
    async with _driver(maker) as connection:
        yield connection


@asynccontextmanager
async def autocommitting(
    maker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[asyncpg.Connection]:
    """`reading` for a hot write of one statement: the driver's connection out of any
    transaction, so the statement commits before it answers, with no BEGIN or COMMIT
    round trips (tests get a savepoint of their outer transaction instead)."""
    async with _driver(maker) as connection:
        yield connection


@asynccontextmanager
async def _driver(
    maker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[asyncpg.Connection]:
    bind = maker.kw.get("bind")
    if isinstance(bind, AsyncConnection):
        # Tests bind one outer transaction. A savepoint, made by SQLAlchemy so that it
        # nests with the sessions' own, keeps a failed statement from aborting it.
        async with bind.begin_nested():
            raw = await bind.get_raw_connection()
            yield raw.driver_connection
        return
    if not isinstance(bind, AsyncEngine):
        raise TypeError(f"a sessionmaker bound to {bind!r}")
    async with bind.connect() as pooled:
        raw = await pooled.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        try:
            yield connection
        except BaseException as exc:
            lost = closed_under(connection, exc)
            if lost is not None or disconnected(exc):
                await pooled.invalidate(exc if isinstance(exc, Exception) else None)
            if lost is not None:
                raise lost from exc
            raise
