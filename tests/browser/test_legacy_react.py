"""The older React inbox (@engagespot/react-component 1.3.8 and 2.3.2), unchanged, on Herald.

They run on @engagespot/core 1.3.8 and 1.4.2 (through @engagespot/react-hooks 1.x), take the host
root as `baseURL` and build live items from the socket payload alone. Each page is served from
its own origin, like the 3.0.1 test beside this one.
"""

import re
import secrets
from pathlib import Path

import httpx
import pytest

from tests.browser.page import STEP_TIMEOUT_MS, Driver, checked, send
from tests.factories import Creds

pytestmark = pytest.mark.live

# What each version's web-push opt-in overlay says (its heading doubles as a menu item in 1.3.8).
OVERLAY = {
    "1.3.8": "Allow Engagespot to send you push notification when you have new messages and offers",
    "2.3.2": "Would you like to enable web push notifications?",
}
# @engagespot/template-blocks 1.x (under both) imports these stylesheets when it loads.
STYLES = [
    "https://fonts.googleapis.com/css2?family=Public+Sans:",
    "https://cdn.jsdelivr.net/npm/@shoelace-style/shoelace@2.13.1/cdn/themes/light.css",
]
# date-fns formatDistance(createdAt, now, {addSuffix: true}) for an item a few seconds old.
JUST_NOW = "less than a minute ago"


@pytest.mark.parametrize("version", ["1.3.8", "2.3.2"])
def test_live_send_shows_its_message_and_time(
    node: str,
    page_origin: str,
    artifacts: Path,
    live_server: str,
    live_app: Creds,
    version: str,
) -> None:
    user = f"legacy-{version}-" + secrets.token_hex(4)
    first, live, later = (f"{kind} {secrets.token_hex(4)}" for kind in ("Listed", "Live", "Later"))
    send(live_server, live_app, user, first)

    query = httpx.QueryParams(baseURL=live_server, apiKey=live_app.api_key, userId=user)
    name = f"legacy-{version}"
    driver = Driver(
        node,
        url=f"{page_origin}/legacy-{version}.html?{query}",
        title=first,
        liveTitle=live,
        overlayText=OVERLAY[version],
        bulkSeen=True,
        stubStyles=STYLES,
        outDir=str(artifacts),
        screenshot=f"{name}.png",
        timeoutMs=STEP_TIMEOUT_MS,
        # As for most users: notifications not allowed yet, so the opt-in overlay shows.
        grantNotifications=False,
    )
    assert driver.next_line() == {"event": "listed"}
    send(live_server, live_app, user, live)
    assert driver.next_line() == {"event": "closed"}
    send(live_server, live_app, user, later)
    assert driver.next_line() == {"event": "badge"}
    # Seen elsewhere (another tab, a backend): the socket's seen events clear this page's badge.
    marked = httpx.post(
        f"{live_server}/v3/notifications/markAllNotificationsAsSeen",
        headers=live_app.user(user),
    )
    assert marked.json()["message"] == "1 notifications marked as seen", marked.text
    result = driver.report()

    report = checked(result, artifacts, name)
    assert [u[: len(p)] for u, p in zip(result["stubbed"], STYLES, strict=True)] == STYLES, report
    assert result["overlayShown"], report
    assert result["overlayDismissed"], report
    assert result["badge"] == "1", report
    # Listed (REST) and live (socket) items read the same: title, message, a real time.
    assert result["itemTexts"] == [first, "All checks passed", JUST_NOW], report
    assert result["liveItemTexts"] == [live, "All checks passed", JUST_NOW], report
    assert result["liveTitleFound"], report
    assert not any("/v3/notifications?" in r for r in result["requestsAfterListed"]), report
    assert result["badgeCounted"] == "1", report
    assert result["badgeCleared"], report
    # The socket connected to Herald (host root, default path), not to the cloud.
    sockets = [ws for ws in result["websockets"] if ws["connected"]]
    assert [re.sub(r"\?.*", "", ws["url"]) for ws in sockets] == [
        live_server.replace("http", "ws", 1) + "/socket.io/"
    ], report
    # No errors, thrown or logged (`checked` asserts both are empty).
    assert result["consoleErrors"] == result["pageErrors"] == [], report
