"""A `herald worker` SIGKILLed mid-batch of e-mails: another worker finishes the batch, and no
e-mail is lost or sent twice. One e-mail is caught before DATA (it is sent again), another
after the server took its content (it is marked `unknown`, not sent again)."""

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import TEST_SECRET_KEY
from tests.delivery.conftest import ADMIN, send, settled
from tests.delivery.peers import SmtpPeer
from tests.delivery.test_email import email_app, smtp_config
from tests.queue.support import WorkerProcess, wait_for

pytestmark = pytest.mark.live
BATCH = 30


def _worker_env(ca_file: Path) -> dict[str, str]:
    """What the e-mail worker needs on top of the shared worker environment."""
    return {
        "HERALD_SECRET_KEY": TEST_SECRET_KEY,
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_DELIVERY_RETRY_DELAYS": "0.2,0.4,0.8",
        "SSL_CERT_FILE": str(ca_file),
    }


@pytest.fixture
async def workers(
    channel_database: str, ca_file: Path, channel_engine: AsyncEngine
) -> AsyncIterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(WorkerProcess(channel_database, _worker_env(ca_file)))
        return started[-1]

    yield start
    for w in started:
        w.stop()
    async with channel_engine.begin() as conn:
        await conn.execute(text("DELETE FROM pgqueuer"))


@pytest.fixture
def smtp(ca: trustme.CA) -> Iterator[SmtpPeer]:
    peer = SmtpPeer(ca).start()
    yield peer
    peer.stop()


async def _reached(smtp: SmtpPeer, address: str, first: WorkerProcess) -> bool | None:
    assert first.proc.poll() is None, first.log.read_text()[-3000:]
    event = smtp.handler.reached.get(address)
    return True if event is not None and event.is_set() else None


async def test_a_worker_killed_mid_batch_loses_and_duplicates_no_email(
    api: httpx.AsyncClient, smtp: SmtpPeer, workers: Callable[[], WorkerProcess]
) -> None:
    held_data = "b-1@example.com"
    handler = smtp.handler
    # Mid-batch: the RCPT after the batch's 5th e-mail is held, whichever address it is.
    handler.hold_when = lambda address: (
        address.startswith("a-")
        and sum(r.rcpt_tos[0].startswith("a-") for r in handler.received) >= 5
    )
    handler.hold_data[held_data] = threading.Event()
    # One message in flight per app, so the kill lands exactly where the peer holds it.
    config = smtp_config(smtp.port)
    batch, [batch_provider] = await email_app(api, config)
    single, [single_provider] = await email_app(api, config)
    for creds, provider in ((batch, batch_provider), (single, single_provider)):
        await api.patch(
            f"/admin/apps/{creds.id}/providers/{provider['id']}",
            json={"concurrency": 1},
            headers=ADMIN,
        )
    addresses = [f"a-{i}@example.com" for i in range(1, BATCH + 1)]
    batch_id = await send(
        api, batch, {"notification": {"title": "Batch"}, "sendTo": {"recipients": addresses}}
    )
    single_id = await send(
        api, single, {"notification": {"title": "One"}, "sendTo": {"recipients": [held_data]}}
    )

    first = workers()

    async def rcpt_held() -> str | None:
        assert first.proc.poll() is None, first.log.read_text()[-3000:]
        return handler.held[0] if handler.held else None

    held_rcpt = await wait_for(rcpt_held, within=60, what="the RCPT hold", interval=0.05)
    await wait_for(
        lambda: _reached(smtp, held_data, first), within=60, what="the DATA hold", interval=0.05
    )
    first.kill()
    for event in (handler.release, *handler.hold_data.values()):
        event.set()
    before = {a: len(smtp.handler.to(a)) for a in addresses}
    assert 0 < sum(before.values()) < BATCH, "killed mid-batch"
    assert before[held_rcpt] == 0

    # The kill landed where it was meant to; the rest of the batch may go faster.
    await api.patch(
        f"/admin/apps/{batch.id}/providers/{batch_provider['id']}",
        json={"concurrency": 8},
        headers=ADMIN,
    )
    workers()
    found = await settled(api, batch, batch_id, within=120, count=BATCH)
    [one] = await settled(api, single, single_id, within=60)

    assert {d["status"] for d in found} == {"sent"}
    counts = {a: len(smtp.handler.to(a)) for a in addresses}
    assert counts == dict.fromkeys(addresses, 1), "every e-mail of the batch arrived exactly once"
    [resent] = [d for d in found if d["user"] == held_rcpt]
    assert "interrupted" in [e["outcome"] for e in resent["log"]]
    # Caught after the server took the content: not sent again, and said so.
    assert one["status"] == "unknown", one
    assert "not sent again" in one["lastError"]
    assert len(smtp.handler.to(held_data)) == 1
