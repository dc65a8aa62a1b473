"""The ASGI application: routers, error handlers, middleware, and the database lifecycle."""

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from app import schema_health
from app.apps import cache as apps_cache
from app.apps.router import router as admin_apps_router
from app.auth.admin_token import digest as admin_token_digest
from app.categories.router import router as categories_router
from app.config import Settings, get_settings
from app.console import router as console
from app.db import CONNECT_ARGS, make_engine, make_sessionmaker
from app.delivery.callback_router import router as callbacks_router
from app.delivery.router import router as admin_delivery_router
from app.devices.router import router as devices_router
from app.edge import Edge
from app.errors import answers, error_response, install_error_handlers
from app.inbox.router import router as inbox_router
from app.keyring import keyring
from app.observability import schema
from app.observability.metrics import Metrics
from app.observability.middleware import Instrument, RouteProbe
from app.observability.router import router as metrics_router
from app.preferences.router import router as preferences_router
from app.read_pool import SIZE as READ_CONNECTIONS
from app.read_pool import ReadPool
from app.realtime.listener import Listener
from app.realtime.server import Realtime
from app.retention.service import Policy as RetentionPolicy
from app.sdk.router import router as sdk_router
from app.sends.admin_router import router as admin_requests_router
from app.sends.router import router as sends_router
from app.sends.workflows_router import router as workflows_router
from app.topics.router import router as topics_router
from app.users.router import router as users_router
from app.worker import WorkerProcess

DESCRIPTION = """
Herald speaks the Engagespot v3 REST API. Point an Engagespot SDK at this server's base URL.

Authenticate with one of: **apiKey + apiSecret** (backends), **apiKey + userId** (inbox,
non-secure apps; add **userSignature** when HMAC is on), **userToken** (RS256 JWT, secure mode),
or **adminToken** for `/admin`.
"""

CORS_HEADERS = [
    "Authorization",
    "Authentication",
    "Content-Type",
    "Cache-Control",
    "Pragma",
    "Expires",
    "X-ENGAGESPOT-API-KEY",
    "X-ENGAGESPOT-API-SECRET",
    "X-ENGAGESPOT-USER-ID",
    "X-ENGAGESPOT-USER-SIGNATURE",
    "X-ENGAGESPOT-DEVICE-ID",
    "X-Request-ID",
    "Idempotency-Key",
]


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    admin_token: str | None = None,
    admin_token_sha256: str | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    realtime = Realtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.slow_callback_ms is not None:
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = settings.slow_callback_ms / 1000
        url = database_url or settings.database_url
        if url is None:
            raise RuntimeError("no database URL: start Herald with `herald serve`")
        engine = make_engine(
            url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout
        )
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        dsn = url.replace("+asyncpg", "", 1)
        app.state.read_pool = ReadPool(
            lambda: asyncpg.connect(dsn, **CONNECT_ARGS),
            size=min(READ_CONNECTIONS, settings.db_pool_size),
            timeout=settings.db_pool_timeout,
        )
        cache: apps_cache.AppCache = app.state.app_cache
        apps_listener = Listener(
            dsn, apps_cache.CHANNEL, cache.notified, on_state=cache.listening, name="herald-apps"
        )
        await apps_listener.start()
        await realtime.start(app.state.sessionmaker, url)
        # The one-command start needs nothing else: a worker runs by default, as a child
        # process, so that its batches never stall the requests (app/worker.py).
        worker = (
            WorkerProcess(url, settings=settings, retention=RetentionPolicy.of(settings))
            if settings.worker
            else None
        )
        if worker is not None:
            await worker.start()
        # Everything loaded so far lives as long as the process: out of the collector's
        # sight, a full collection no longer walks the whole heap (tens of milliseconds
        # with the GIL held, in the middle of a fan-out batch or a request).
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop(grace=30)
            await realtime.stop()
            await apps_listener.stop()
            cache.listening(False)
            await app.state.read_pool.close()
            await engine.dispose()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="Herald",
        version="0.1.0",
        summary="Self-hosted notifications, Engagespot v3 compatible",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by app.console from the wheel, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.realtime = realtime
    # Used only while the lifespan's listener hears app changes (see app/apps/cache.py).
    app.state.app_cache = apps_cache.AppCache(keyring(settings))
    # The admin dependency holds only a digest: replicas share one from the database and
    # may never have seen the token itself (app.runtime.admin_token).
    token = admin_token or (settings.admin_token.get_secret_value() if settings.admin_token else "")
    app.state.admin_token_sha256 = admin_token_sha256 or (
        admin_token_digest(token) if token else None
    )
    # /ready compares the database with the migration scripts, read once here.
    app.state.schema = schema.expected()
    app.state.metrics = Metrics()
    install_error_handlers(app)

    v3 = APIRouter(prefix="/v3")
    for router in (
        sends_router,
        inbox_router,
        categories_router,
        users_router,
        preferences_router,
        sdk_router,
        devices_router,
        topics_router,
        callbacks_router,
    ):
        v3.include_router(router)
    # @engagespot/node sends cancel-run to `<baseUrl>/workflows/…`, i.e. under /v3 too.
    v3.include_router(workflows_router, include_in_schema=False)
    app.include_router(v3)
    app.include_router(workflows_router, prefix="/v4")
    app.include_router(admin_apps_router)
    app.include_router(admin_requests_router)
    app.include_router(admin_delivery_router)
    app.include_router(_health())
    console.install(app)
    if settings.metrics:
        app.include_router(metrics_router)
        # Innermost: reads the matched route (see app/observability/middleware.py).
        app.add_middleware(RouteProbe)

    app.add_middleware(
        Edge,
        max_body=settings.max_body_bytes,
        max_headers=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_HEADERS,
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    if settings.metrics:
        # Outermost: counts and times every answer, refusals and preflights included.
        app.add_middleware(Instrument, metrics=app.state.metrics)
    return app


def served(app: FastAPI) -> ASGIApp:
    """The app as uvicorn serves it: socket.io at /socket.io/, the API everywhere else."""
    realtime: Realtime = app.state.realtime
    return realtime.wrap(app)


def _health() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Answer while the process is up."""
        return {"status": "ok"}

    @router.get("/ready", response_model=None, responses=answers(503))
    async def ready(request: Request) -> dict[str, str] | JSONResponse:
        """Answer 200 when the database answers at the newest migration with every index
        valid, 503 otherwise."""
        try:
            async with request.app.state.engine.connect() as conn:
                problem = await schema.problem(conn, request.app.state.schema)
                problem = problem or await schema_health.problem(conn)
        except Exception:
            return error_response("database unavailable", 503)
        if problem is not None:
            return error_response(problem, 503)
        return {"status": "ok"}

    return router
