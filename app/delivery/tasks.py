"""Queue entrypoints of deliveries: one job per attempt, `{"id": <delivery id>}`; one per
batch for batch providers, `{"ids": [...]}`; Expo's delayed receipts checks."""

import json
import logging
from datetime import timedelta

from pgqueuer import DatabaseRetryEntrypointExecutor, Job, QueueManager
from pgqueuer.executors import EntrypointExecutorParameters

from app.delivery import receipts
from app.delivery.engine import Engine
from app.delivery.service import DELIVER, DELIVER_BATCH

log = logging.getLogger("herald.delivery")


def _retrying(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    # Only a database error escapes an attempt (a provider error is an outcome); the job
    # is run again, and finds its delivery in `sending` (see the crash policy in engine).
    return DatabaseRetryEntrypointExecutor(
        parameters=parameters,
        max_attempts=20,
        initial_delay=timedelta(seconds=1),
        max_delay=timedelta(minutes=1),
    )


def register(qm: QueueManager, engine: Engine) -> None:
    @qm.entrypoint(DELIVER, on_failure="hold", executor_factory=_retrying)
    async def deliver_job(job: Job) -> None:
        delivery_id = int(json.loads(job.payload or b"{}")["id"])
        await engine.run(delivery_id)

    @qm.entrypoint(DELIVER_BATCH, on_failure="hold", executor_factory=_retrying)
    async def deliver_batch_job(job: Job) -> None:
        ids = [int(i) for i in json.loads(job.payload or b"{}")["ids"]]
        await engine.run_batch(ids)

    @qm.entrypoint(receipts.RECEIPTS, on_failure="hold", executor_factory=_retrying)
    async def expo_receipts_job(job: Job) -> None:
        await receipts.check(
            sessionmaker=engine.sessionmaker,
            keyring=engine.keyring,
            http=engine.http,
            settings=engine.settings,
            payload=json.loads(job.payload or b"{}"),
        )
