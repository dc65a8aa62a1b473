"""GET /metrics: Prometheus text format, open unless HERALD_METRICS_TOKEN is set."""

import asyncio
import hmac
import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import SettingsDep
from app.errors import error_response
from app.observability import repository
from app.observability.metrics import Metrics, QueueRow

log = logging.getLogger("herald.metrics")
router = APIRouter(tags=["health"])
# The queue is read at scrape time; a scrape gives up on it rather than hang.
QUEUE_TIMEOUT_S = 2.0


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Report requests, latency, sends, the queue, sockets and the database pool (Prometheus)."""
    if settings.metrics_token is not None and not _authorized(
        request.headers.get("authorization"), settings.metrics_token.get_secret_value()
    ):
        return error_response(
            "A valid Bearer token (HERALD_METRICS_TOKEN) is required",
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    state = request.app.state
    registry: Metrics = state.metrics
    registry.set_queue(await _queue(state.sessionmaker))
    registry.set_pool(state.engine.pool)
    registry.sockets.set(state.realtime.sockets())
    body, content_type = registry.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


def _authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


async def _queue(maker: async_sessionmaker[AsyncSession]) -> list[QueueRow] | None:
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT_S), maker() as session:
            return await repository.queue_rows(session, timeout_ms=int(QUEUE_TIMEOUT_S * 500))
    except Exception as exc:
        # The scrape still answers: herald_queue_stats_up 0 says what is missing.
        log.warning("metrics: could not read the queue table: %r", exc)
        return None
