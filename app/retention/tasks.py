"""The periodic purge: a PgQueuer schedule, so each due run is taken by one worker only."""

import logging
import time
from dataclasses import replace

from pgqueuer import SchedulerManager
from pgqueuer.models import Schedule

from app.retention import service
from app.retention.service import Maker, Policy

log = logging.getLogger("herald.retention")
ENTRYPOINT = "herald.retention.purge"
# The periodic purge is in no hurry: busy at most half the time, it leaves the rest to users.
PAUSE = 1.0


def schedule(sm: SchedulerManager, maker: Maker, policy: Policy) -> bool:
    """Register the purge on `sm` at `policy.schedule`; False when no schedule is set."""
    if not policy.schedule:
        return False

    # clean_old: a changed HERALD_RETENTION_SCHEDULE replaces the stored one.
    @sm.schedule(ENTRYPOINT, policy.schedule, clean_old=True)
    async def purge_job(_: Schedule) -> None:
        started = time.monotonic()
        # Stop between batches when the worker stops; the next run continues.
        deleted = await service.purge(
            maker, replace(policy, pause=PAUSE), stopping=sm.shutdown.is_set
        )
        if deleted is None:
            log.info("retention: another purge is running; this run is skipped")
            return
        log.info(
            "retention: purge done in %.1f s: %s",
            time.monotonic() - started,
            ", ".join(f"{table} {rows}" for table, rows in deleted.items()),
        )

    return True
