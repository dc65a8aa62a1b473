"""Which exceptions are database faults a client should retry, rather than bugs or bad input.

Classified by type and SQLSTATE, never by message text. SQLAlchemy wraps asyncpg's errors
(`DBAPIError.orig`, whose `__cause__` is asyncpg's own), so the whole chain is examined."""

from collections.abc import Iterator
from enum import Enum

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class Fault(Enum):
    # The connection is gone or cannot be made: a restart, a failover, a network cut.
    UNAVAILABLE = "unavailable"
    # The database is up but cannot take this work now: pool exhausted, too many
    # connections, a deadlock or serialization victim, a statement or lock timeout.
    BUSY = "busy"


# Class 08: connection exception. 57P01/02/03: admin shutdown, crash shutdown, cannot
# connect now (starting up, shutting down, in recovery). 57P05: idle session timeout.
_GONE_STATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
# Class 53: insufficient resources (too_many_connections is 53300). 40001 serialization
# failure, 40P01 deadlock: PostgreSQL rolled the transaction back and asks for a retry.
# 57014: statement timeout. 55P03: lock timeout.
_BUSY_STATES = frozenset({"40001", "40P01", "57014", "55P03"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, DBAPIError) and current.orig is not None:
            current = current.orig
        else:
            current = current.__cause__


def disconnected(exc: BaseException) -> bool:
    """Whether `exc` means this connection to the database is dead or unusable."""
    for e in _chain(exc):
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _GONE_STATES):
            return True
        # asyncpg's protocol state is broken, most often because the server sent its FATAL
        # message and the close has not been read yet: the connection cannot be reused.
        if isinstance(e, asyncpg.InternalClientError):
            return True
        # Connection refused or reset, no route to the host, a connect or command timeout.
        if isinstance(e, OSError):
            return True
    return False


def fault_of(exc: BaseException) -> Fault | None:
    """The kind of database fault `exc` is, or None when it is something else (a bug)."""
    if disconnected(exc):
        return Fault.UNAVAILABLE
    for e in _chain(exc):
        if isinstance(e, PoolTimeout):
            return Fault.BUSY
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("53") or state in _BUSY_STATES):
            return Fault.BUSY
        # A migration changed a table under a connection's cached prepared statement: the
        # statement fails once (its cache is then cleared) and a retry succeeds.
        if isinstance(e, asyncpg.InvalidCachedStatementError):
            return Fault.BUSY
    return None


def closed_under(connection: asyncpg.Connection, exc: BaseException) -> BaseException | None:
    """The fault to raise instead of `exc`, when `exc` came from a driver's connection that
    is closed: for one it saw close before the statement, asyncpg raises a bare
    InterfaceError ("connection is closed", no SQLSTATE), which is no bug but a connection
    lost. SQLAlchemy's statements get this from its dialect; the driver's own (app.db
    reading and writing, app.read_pool) from here."""
    if isinstance(exc, asyncpg.InterfaceError) and connection.is_closed():
        lost: BaseException = asyncpg.ConnectionDoesNotExistError(str(exc))
        return lost
    return None
