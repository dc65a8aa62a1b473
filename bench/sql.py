"""The SQL floor: the statements Herald itself issues for a request, replayed with bare asyncpg.

The statements are not written out here (they would drift from the app): one real request of
each kind goes through the app in this process (ASGI transport, same code as the server), a
SQLAlchemy hook records every statement and its parameters exactly as sent to asyncpg (and an
asyncpg query logger those the hot paths run on the driver's connection: the inbox page, a
send group), and the floor replays them in one transaction per request. What the floor
leaves out is therefore exactly Herald's own cost: HTTP, FastAPI, auth and validation code,
the ORM, serialisation."""

import asyncio
import re
import secrets
import tempfile
import uuid
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asyncpg import introspection as asyncpg_introspection
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import CONNECT_ARGS
from app.main import create_app
from app.read_pool import ReadPool
from bench.server import SECRET_KEY


@dataclass(frozen=True)
class Captured:
    sql: str
    args: tuple[Any, ...]

    @property
    def label(self) -> str:
        """A short name: the inbox's page and counts by shape, anything else by its table."""
        flat = " ".join(self.sql.split())
        if "count(" in flat.lower() and "FROM notifications" in flat:
            return "unreadCount" if "seen_at IS NULL" in flat else "totalCount"
        if "FROM notifications" in flat and "ORDER BY notifications.id DESC" in flat:
            return "page"
        if "FROM notifications" in flat and "json_build_object" in flat:
            return "page"  # with its counts, written as the response body
        if "pg_notify(" in flat:
            return "NOTIFY"
        verb = flat.split(" ", 1)[0].upper()
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([a-z_]+)", flat, re.IGNORECASE)
        return f"{verb} {table.group(1) if table else '…'}"


@dataclass(frozen=True)
class Recorded:
    response: httpx.Response
    statements: list[Captured]


async def record(url: str, requests: list[tuple[str, str, dict[str, str], Any]]) -> list[Recorded]:
    """Send each (method, path, headers, json) through the app in-process; keep its SQL."""
    settings = Settings(
        database_url=url,
        admin_token=secrets.token_urlsafe(24),
        data_dir=Path(tempfile.mkdtemp(prefix="herald-bench-")),
        worker=False,  # no queue consumer in the bench process (ignored by apps without one)
        secret_key=SecretStr(SECRET_KEY),  # opens the secrets of the bench's app
    )
    app = create_app(settings)
    out: list[Recorded] = []
    driver = _DriverLog()
    async with app.router.lifespan_context(app):
        dsn = url.replace("+asyncpg", "", 1)
        app.state.read_pool = ReadPool(lambda: driver.watched(asyncpg.connect(dsn, **CONNECT_ARGS)))
        event.listen(app.state.engine.sync_engine, "checkout", driver.checked_out)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for method, path, headers, body in requests:
                with _recording(app.state.engine) as statements:
                    driver.into = statements
                    response = await client.request(method, path, headers=headers, json=body)
                    # asyncpg hands its log records to the loop (call_soon): let them land.
                    for _ in range(3):
                        await asyncio.sleep(0)
                    driver.into = None
                if response.status_code >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
                out.append(Recorded(response, list(statements)))
    return out


# Transaction control: replay runs each request's statements in a transaction of its own.
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
# The catalog lookups asyncpg makes the first time a connection meets a type (uuid[], say),
# with JIT turned off around them: its own, once per connection, not the request's.
_ASYNCPG_OWN = frozenset(
    v for v in vars(asyncpg_introspection).values() if isinstance(v, str) and "pg_" in v
)
_ASYNCPG_JIT = "set_config('jit'"


class _DriverLog:
    """The statements run on the driver's connections (Connection.fetch and the like, which
    SQLAlchemy's hooks do not see; SQLAlchemy's own go through prepared statements, which
    asyncpg's query log does not see, so nothing is recorded twice)."""

    def __init__(self) -> None:
        self.into: list[Captured] | None = None
        self._watched: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()

    async def watched(self, connecting: Awaitable[asyncpg.Connection]) -> asyncpg.Connection:
        connection = await connecting
        self._watch(connection)
        return connection

    def checked_out(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        self._watch(dbapi_connection.driver_connection)

    def _watch(self, connection: asyncpg.Connection) -> None:
        if connection not in self._watched:
            self._watched.add(connection)
            connection.add_query_logger(self._logged)

    def _logged(self, record: Any) -> None:
        query = record.query
        if (
            self.into is not None
            and not _CONTROL.match(query)
            and query not in _ASYNCPG_OWN
            and _ASYNCPG_JIT not in query
        ):
            self.into.append(Captured(query, tuple(record.args or ())))


@contextmanager
def _recording(engine: AsyncEngine) -> Iterator[list[Captured]]:
    statements: list[Captured] = []

    def hook(*args: Any) -> None:
        _conn, _cursor, statement, parameters, _context, _many = args
        statements.append(Captured(statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", hook)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", hook)


async def replay(conn: asyncpg.Connection, statements: list[Captured]) -> None:
    """Run the statements in one transaction, each as a prepared statement (as the app does)."""
    async with conn.transaction():
        for s in statements:
            await conn.fetch(s.sql, *s.args)


def with_new_request(statements: list[Captured], request_id: uuid.UUID) -> list[Captured]:
    """The same send again: every occurrence of its request id replaced with a fresh one."""
    fresh = uuid.uuid4()

    def swap(value: Any) -> Any:
        # A grouped send passes its ids as arrays (one element per send of the group).
        if isinstance(value, list | tuple):
            return type(value)(swap(v) for v in value)
        if value == request_id:
            return fresh
        if value == str(request_id):
            return str(fresh)
        return value

    return [Captured(s.sql, tuple(swap(a) for a in s.args)) for s in statements]


def literal(value: Any) -> str:
    """A SQL literal for EXPLAIN … EXECUTE (integers and text are all the inbox queries use)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {value!r}")
