"""400 concurrent 1,000-recipient sends against one `herald serve` (its default pool: 10
connections, no overflow): every answer is a 202 or a 503 with Retry-After, never a
500 (issue 12 measured 66 x 500 from pool timeouts), and every 202 has its 1,000 inbox rows.

The pool wait is cut from 30 s to 2 s here, so many sends do time out waiting for a
connection (the path under test) and the test stays short.

The client is aiohttp, which puts all 400 on the wire at once; httpx's pool feeds them to
the server a few at a time, which is gentler than the burst this test is about."""

import asyncio
import json
import secrets
import time
from collections.abc import Iterator

import aiohttp
import httpx
import pytest

from app.runtime import migrate
from tests.faults.load import Answer, Tally, refusal_problems, rows_per_request
from tests.live import running_process
from tests.shared_server import own_database

pytestmark = pytest.mark.live

ADMIN_TOKEN = "overload-admin-" + secrets.token_hex(8)
POOL_TIMEOUT = "2"
SENDS = 400
RECIPIENTS = 1_000


@pytest.fixture(scope="module")
def overload_database(pg_server: str) -> Iterator[str]:
    with own_database(pg_server, "overload") as url:
        migrate(url)
        yield url


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "grouped"])
async def test_400_concurrent_1000_recipient_sends_are_each_a_202_or_a_503(
    overload_database: str, keyed: bool
) -> None:
    url = overload_database
    audience = [f"member-{j}" for j in range(RECIPIENTS)]
    env = {"HERALD_DB_POOL_TIMEOUT": POOL_TIMEOUT}
    with running_process(url, admin_token=ADMIN_TOKEN, extra_env=env) as (base, _):
        made = httpx.post(  # noqa: ASYNC210  (once, before the load)
            f"{base}/admin/apps",
            json={"name": "overload"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert made.status_code == 201, made.text
        app = made.json()
        headers = {
            "X-ENGAGESPOT-API-KEY": app["apiKey"],
            "X-ENGAGESPOT-API-SECRET": app["apiSecret"],
            "Content-Type": "application/json",
        }
        connector = aiohttp.TCPConnector(limit=SENDS)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:

            async def send(i: int) -> Answer:
                body = {"notification": {"title": f"load {i}"}, "sendTo": {"recipients": audience}}
                # Keyed, as a client that retries 503s sends them (README): a keyed send holds
                # its pooled connection while it is accepted, so the burst exhausts the pool.
                # Unkeyed, they are grouped and wait for their group without a connection.
                key = {"Idempotency-Key": f"overload-{i}"} if keyed else {}
                began = time.monotonic()
                try:
                    async with client.post(
                        "/v3/notifications", data=json.dumps(body), headers={**headers, **key}
                    ) as response:
                        answer = await response.json(content_type=None)
                        status, retry = response.status, response.headers.get("Retry-After")
                except aiohttp.ClientError as exc:
                    return Answer(i, began, time.monotonic(), None, error=repr(exc))
                return Answer(i, began, time.monotonic(), status, answer, retry)

            started = time.monotonic()
            answers = await asyncio.gather(*(send(i) for i in range(SENDS)))
            took = time.monotonic() - started

    assert [a for a in answers if a.status is None] == []
    assert refusal_problems(answers) == [], "an answer other than 202 or 503 with Retry-After"
    accepted = [a.request_id for a in answers if a.request_id is not None]
    refused = [a for a in answers if a.status == 503]
    assert accepted, "no send got through"
    if keyed:
        assert refused, "no send waited out the pool: the burst did not exhaust it"

    rows = await rows_per_request(url, int(app["id"]))
    found = sum(1 for rid in accepted if rows.get(rid) == RECIPIENTS)
    assert found == len(accepted)
    # Nothing beyond the 202s was written, and nothing twice.
    assert sorted(rows) == sorted(accepted)
    latencies = sorted(a.ended - a.started for a in answers)
    tally = Tally(len(accepted), found, 0, len(refused), 0)
    print(
        "\n"
        + tally.line(
            f"{SENDS} concurrent {'keyed' if keyed else 'grouped'} {RECIPIENTS}-recipient sends"
            f" ({POOL_TIMEOUT} s pool wait)"
        )
        + f"; 0 x 500; {took:.1f} s in all, answer p50 {latencies[len(latencies) // 2]:.1f} s,"
        f" max {latencies[-1]:.1f} s"
    )
