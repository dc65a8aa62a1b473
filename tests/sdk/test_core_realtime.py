"""@engagespot/core 3.0.1 (bundled, unchanged) keeps an inbox live over Herald's socket.io."""

import pytest

from tests.factories import Creds
from tests.sdk import node
from tests.sdk.node import Js

pytestmark = [pytest.mark.node, pytest.mark.live]


@pytest.fixture(scope="session")
def js() -> Js:
    return node.prepare()


def test_events_reach_the_user_and_no_one_else(js: Js, live_server: str, live_app: Creds) -> None:
    out = js.run(
        "core_realtime",
        node.config(live_server, live_app, HERALD_USER_ID="rt-ann", HERALD_OTHER_USER_ID="rt-bob"),
    )
    assert out["failures"] == []
    received = out["received"]
    assert received["title"] == "realtime hello"
    assert received["state"] == "unread"
    assert received["seenAt"] is None
    assert out["read"] == {"id": received["id"]}
    assert out["deleted"] == {"id": received["id"]}
    assert out["readAll"] is None
    assert out["deleteAll"] is None
    # Marking read also announces the new unseen count; nothing else is left over.
    assert set(out["leftover"]) <= {"notificationSeen"}
    assert out["otherHeard"] == []
