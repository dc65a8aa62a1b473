"""The SQL floor: the statements Herald itself issues for a request, replayed with bare asyncpg.

The statements are not written out here (they would drift from the app): one real request of
each kind goes through the app in this process (ASGI transport, same code as the server), a
SQLAlchemy hook records every statement and its parameters exactly as sent to asyncpg, and the
floor replays them in one transaction per request. What the floor leaves out is therefore
exactly Herald's own cost: HTTP, FastAPI, auth and validation code, the ORM, serialisation."""

import re
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
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
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for method, path, headers, body in requests:
                with _recording(app.state.engine) as statements:
                    response = await client.request(method, path, headers=headers, json=body)
                if response.status_code >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
                out.append(Recorded(response, list(statements)))
    return out


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
