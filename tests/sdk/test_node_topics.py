"""Topics and workflow cancellation through @engagespot/node 1.7.0, unchanged, on a live Herald."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Creds
from tests.queue.support import deliveries, request_status, wait_status
from tests.sdk import node
from tests.sdk.node import Js

pytestmark = [pytest.mark.node, pytest.mark.live]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="session")
def js() -> Js:
    return node.prepare()


def topic(item: dict[str, Any]) -> tuple[str, str]:
    return item["identifier"], item["name"]


def subscriptions(items: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(s["topic"]["identifier"], s["channels"]) for s in items]


async def test_topics_and_cancel_run_through_the_node_sdk(
    js: Js, live_server: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    other = node.new_app(live_server)
    send_at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    out = js.run(
        "topics_flow",
        node.config(
            live_server,
            live_app,
            HERALD_OTHER_API_KEY=other.api_key,
            HERALD_OTHER_API_SECRET=other.api_secret,
            HERALD_SEND_AT=send_at,
        ),
    )
    assert out["failures"] == []

    # create resolves to the topic; the SDK derived "product-updates" from the name.
    created, digest = out["created"], out["createdDigest"]
    assert topic(created) == ("product-updates", "Product Updates")
    assert topic(digest) == ("digest", "Weekly digest")
    assert ISO.match(created["createdAt"])
    assert out["duplicate"]["status"] == 409
    assert out["duplicate"]["data"]["message"] == (
        "A topic with identifier 'product-updates' already exists"
    )

    assert out["renamed"]["id"] == created["id"]
    assert topic(out["renamed"]) == ("product-updates", "Product news")
    assert out["strangerRename"]["status"] == 404

    assert out["subscribed"] == {"message": "Users subscribed", "count": 3}
    assert out["subscribedDigest"] == {"message": "Users subscribed", "count": 1}
    assert subscriptions(out["aliceSubscriptions"]) == [
        ("product-updates", ["inApp", "email"]),
        ("digest", []),
    ]
    assert out["aliceSubscriptions"][0]["topic"]["name"] == "Product news"
    assert out["channelUpdated"] == {"message": "Channels updated", "count": 1}
    assert subscriptions(out["bobSubscriptions"]) == [("product-updates", ["email"])]
    assert out["unsubscribed"] == {"message": "Users detached", "count": 1}
    assert out["carolSubscriptions"] == []
    # The other app has no user "alice", let alone her subscriptions.
    assert out["strangerSubscriptions"] == []

    # The topic send reaches alice (inApp listed) only: bob is on email only, carol left.
    topic_send = out["topicSend"]["requestId"]
    assert REQUEST_ID.match(topic_send)
    async with httpx.AsyncClient(base_url=live_server, timeout=10) as client:
        done = await wait_status(client, live_app.id, topic_send, "done", within=20)
        assert done["delivered"] == 1
        assert await deliveries(live_engine, topic_send) == {"alice": 1}

        # cancelRun goes to PATCH <baseUrl>/workflows/onboarding, i.e. under /v3 here.
        assert out["cancelForBob"] == {"message": "1 runs cancelled", "cancelled": 1}
        assert out["strangerCancel"] == {"message": "0 runs cancelled", "cancelled": 0}
        assert out["cancelAll"] == {"message": "1 runs cancelled", "cancelled": 1}
        assert out["cancelAgain"] == {"message": "0 runs cancelled", "cancelled": 0}
        assert out["cancelInvalid"]["status"] == 400
        assert out["cancelInvalid"]["data"]["message"] == ["cancellationKey is required"]
        scheduled = await request_status(client, live_app.id, out["scheduled"]["requestId"])
        assert scheduled["status"] == "cancelled"
        assert scheduled["cancellationKey"] == "profile-alice-bob"
        assert scheduled["delivered"] == 0

    assert out["strangerDelete"]["status"] == 404
    assert out["deleted"] == {"message": "Topic deleted", "count": 1}
    assert out["deletedAgain"]["status"] == 404
    assert subscriptions(out["aliceAfterDelete"]) == [("product-updates", ["inApp", "email"])]
