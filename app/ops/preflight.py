"""Checks before start-up work begins, each failing as one ConfigError naming the setting."""

import asyncio
import errno
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.ops.problems import ConfigError, redact, scrub

CONNECT_TIMEOUT = 10.0


def data_dir(path: Path) -> None:
    """Make sure Herald can create files in HERALD_DATA_DIR (admin token, embedded database)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".herald-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"HERALD_DATA_DIR: cannot write to {path}: {exc.strerror or exc}"
        ) from None


def port(host: str, number: int, *, setting: str) -> None:
    """Refuse a port another process listens on (or one this user may not take)."""
    try:
        addresses = socket.getaddrinfo(
            host, number, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"HERALD_HOST: cannot resolve {host!r} ({exc.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(_bind_problem(exc, host, number, setting)) from None


def _bind_problem(exc: OSError, host: str, number: int, setting: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{setting}: port {number} on {host} is already in use by another process"
    if exc.errno == errno.EACCES:
        return f"{setting}: not allowed to listen on port {number} (below 1024 needs privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"HERALD_HOST: {host} is not an address of this machine"
    return f"{setting}: cannot listen on {host}:{number} ({exc.strerror or exc})"


def database(url: str) -> None:
    """Connect once, so a wrong URL, password or server is one clear line, not a traceback."""
    asyncio.run(_connect(url))


async def _connect(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # every way a connection fails becomes one line
        raise ConfigError(_connect_problem(url, exc)) from None
    finally:
        await engine.dispose()


def _connect_problem(url: str, exc: BaseException) -> str:
    parsed = make_url(url)
    shown = redact(url.replace("+asyncpg", "", 1)) or "the configured URL"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if parsed.host is None and parsed.query.get("host"):
        where = f"socket {parsed.query['host']}"
    cause = _root(exc)
    user = parsed.username or "postgres"
    if isinstance(cause, asyncpg.InvalidPasswordError):
        problem = f"password authentication failed for user {user!r}"
    elif isinstance(cause, asyncpg.InvalidCatalogNameError):
        problem = f"database {parsed.database!r} does not exist (create it first)"
    elif isinstance(cause, ConnectionRefusedError):
        problem = f"connection refused: nothing listens at {where}"
    elif isinstance(cause, socket.gaierror):
        problem = f"cannot resolve host {parsed.host!r}"
    elif isinstance(cause, TimeoutError):
        problem = f"no answer from {where} within {CONNECT_TIMEOUT:g} s"
    elif isinstance(cause, asyncpg.PostgresError | OSError | ConnectionError):
        problem = str(cause) or type(cause).__name__
    else:
        problem = f"{type(cause).__name__}: {cause}"
    problem = scrub(problem.splitlines()[0] if problem else problem, parsed.password)
    return f"HERALD_DATABASE_URL: cannot connect to {shown}: {problem}"


def _root(exc: BaseException) -> BaseException:
    """The driver's exception under SQLAlchemy's wrappers."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner: BaseException | None = exc.orig if isinstance(exc, DBAPIError) else None
        inner = inner or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


def redis(url: str) -> None:
    """Reach HERALD_REDIS_URL before start-up: a wrong one is one line, not a silent realtime."""
    # Imported here: only deployments that set the URL load the client.
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    shown = redact(url) or "the URL"

    async def ping() -> None:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except (RedisError, OSError, ValueError) as exc:
        parsed = urlsplit(url)
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = scrub(problem, parsed.password)
        raise ConfigError(f"HERALD_REDIS_URL: cannot connect to {shown}: {problem}") from None
