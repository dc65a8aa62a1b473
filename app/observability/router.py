"""GET /metrics: Prometheus text format, open unless HERALD_METRICS_TOKEN is set."""

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.dependencies import MetricsDep
from app.observability import repository
from app.observability.metrics import Metrics, QueueRow

log = logging.getLogger("herald.metrics")
router = APIRouter(tags=["health"])
# The queue is read at scrape time; a scrape gives up on it rather than hang.
QUEUE_TIMEOUT_S = 2.0


@router.get("/metrics", response_class=Response, dependencies=[MetricsDep])
async def metrics(request: Request) -> Response:
    """Report requests, latency, sends and their groups, the queue, sockets and the database
    pools (Prometheus)."""
    state = request.app.state
    registry: Metrics = state.metrics
    registry.set_queue(await _queue(state.sessionmaker))
    registry.set_pool(state.engine.pool)
    registry.set_read_pool(getattr(state, "read_pool", None))
    registry.sockets.set(state.realtime.sockets())
    body, content_type = registry.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


async def _queue(maker: async_sessionmaker[AsyncSession]) -> list[QueueRow] | None:
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT_S), maker() as session:
            return await repository.queue_rows(session, timeout_ms=int(QUEUE_TIMEOUT_S * 500))
    except Exception as exc:
        # The scrape still answers: herald_queue_stats_up 0 says what is missing.
        log.warning("metrics: could not read the queue table: %r", exc)
        return None
