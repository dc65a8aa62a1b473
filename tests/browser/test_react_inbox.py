"""The official React inbox (@engagespot/react-component 3.0.1), in headless Chromium, on Herald.

The page is served from its own origin (another 127.0.0.1 port), so every call the component makes
to Herald is a cross-origin request that needs CORS. The settings (HERALD_REQUIRE_BROWSER,
HERALD_CHROMIUM, HERALD_BROWSER_ARTIFACTS) are described in conftest.py.
"""

import secrets
from pathlib import Path

import httpx
import pytest

from tests.browser.page import STEP_TIMEOUT_MS, Driver, checked, send
from tests.factories import Creds

pytestmark = pytest.mark.live


@pytest.mark.parametrize("grant", [True, False], ids=["permission-granted", "overlay-dismissed"])
def test_react_inbox_lists_what_was_sent(
    node: str, page_origin: str, artifacts: Path, live_server: str, live_app: Creds, grant: bool
) -> None:
    user = "browser-" + secrets.token_hex(4)
    title = f"Deploy {secrets.token_hex(4)} finished"
    send(live_server, live_app, user, title)
    assert page_origin != live_server

    query = httpx.QueryParams(baseUrl=live_server, apiKey=live_app.api_key, userId=user)
    name = "inbox" if grant else "inbox-overlay"
    result = Driver(
        node,
        url=f"{page_origin}/index.html?{query}",
        title=title,
        outDir=str(artifacts),
        screenshot=f"{name}.png",
        timeoutMs=STEP_TIMEOUT_MS,
        grantNotifications=grant,
    ).report()

    report = checked(result, artifacts, name)
    assert result["badge"] == "1", report
    assert any(
        r.startswith(f"GET {live_server}/v3/notifications?") and r.endswith(" 200")
        for r in result["requests"]
    ), report
    if grant:
        assert result["notificationPermission"] == "granted", report
        assert not result["overlayShown"], report
    else:
        # The component asks to enable web push whenever the permission is not granted.
        assert result["notificationPermission"] in ("default", "denied"), report
        assert result["overlayShown"], report
        assert result["overlayDismissed"], report


def test_react_inbox_shows_a_live_send_without_reloading(
    node: str, page_origin: str, artifacts: Path, live_server: str, live_app: Creds
) -> None:
    user = "browser-" + secrets.token_hex(4)
    first, live = (f"{kind} {secrets.token_hex(4)}" for kind in ("Listed", "Live"))
    send(live_server, live_app, user, first)

    query = httpx.QueryParams(baseUrl=live_server, apiKey=live_app.api_key, userId=user)
    driver = Driver(
        node,
        url=f"{page_origin}/index.html?{query}",
        title=first,
        liveTitle=live,
        outDir=str(artifacts),
        screenshot="inbox-live.png",
        timeoutMs=STEP_TIMEOUT_MS,
    )
    if driver.next_line() == {"event": "listed"}:
        send(live_server, live_app, user, live)
    result = driver.report()

    report = checked(result, artifacts, "inbox-live")
    assert result["liveTitleFound"], report
    # Only the socket brought it: the panel fetched no page of the feed after listing.
    assert not any("/v3/notifications?" in r for r in result["requestsAfterListed"]), report
    assert any(ws["framesReceived"] > 0 for ws in result["websockets"]), report
