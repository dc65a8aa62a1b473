"""Queue entrypoints of the send pipeline: thin wrappers around `fanout`."""

import json
import logging
import uuid
from datetime import timedelta

from pgqueuer import DatabaseRetryEntrypointExecutor, Job, QueueManager
from pgqueuer.executors import EntrypointExecutorParameters
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.sends import fanout
from app.sends.accept import FAN_OUT

log = logging.getLogger("herald.worker")
MAX_ATTEMPTS = 5


def _retrying(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    # PgQueuer counts retries: `job.attempts` is 0 on the first run, and it gives up when a
    # run fails with `job.attempts >= max_attempts`. So MAX_ATTEMPTS runs in all.
    return DatabaseRetryEntrypointExecutor(
        parameters=parameters,
        max_attempts=MAX_ATTEMPTS - 1,
        initial_delay=timedelta(seconds=1),
        max_delay=timedelta(minutes=1),
    )


async def fan_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    request_id: uuid.UUID,
    *,
    batch: int,
    web_push: bool = False,
) -> int:
    """Run batches until the request is finished; return the rows written."""
    written = 0
    while True:
        async with sessionmaker.begin() as session:
            progress = await fanout.run_batch(session, request_id, batch=batch, web_push=web_push)
        written += progress.written
        if progress.done:
            return written


def register(
    qm: QueueManager,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    batch: int = 5_000,
    web_push: bool = False,
) -> None:
    # A poisoned send is retried with backoff, then held by PgQueuer as `failed`, and the
    # request records the error for the admin API.
    @qm.entrypoint(FAN_OUT, on_failure="hold", executor_factory=_retrying)
    async def fan_out_job(job: Job) -> None:
        request_id = uuid.UUID(json.loads(job.payload or b"{}")["requestId"])
        try:
            written = await fan_out(sessionmaker, request_id, batch=batch, web_push=web_push)
        except Exception as exc:
            final = job.attempts >= MAX_ATTEMPTS - 1
            log.warning(
                "fan-out of %s failed (attempt %d of %d): %r",
                request_id,
                job.attempts + 1,
                MAX_ATTEMPTS,
                exc,
            )
            async with sessionmaker.begin() as session:
                await fanout.record_failure(session, request_id, error=repr(exc), final=final)
            raise
        log.info("fan-out of %s done: %d inbox rows", request_id, written)
