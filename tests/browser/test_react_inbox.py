"""The official React inbox (@engagespot/react-component 3.0.1), in headless Chromium, on Herald.

The page is served from its own origin (another 127.0.0.1 port), so every call the component makes
to Herald is a cross-origin request that needs CORS. Set HERALD_REQUIRE_BROWSER=1 to fail instead
of skip when Node.js or Chromium is missing; HERALD_CHROMIUM names another Chromium binary
(default /usr/bin/chromium); set HERALD_BROWSER_ARTIFACTS to a directory to keep the page, the
screenshots and the driver's reports there.
"""

import functools
import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, HERE
from tests.factories import Creds, send_body

STEP_TIMEOUT_MS = 15_000  # each wait inside the driver
DRIVER_TIMEOUT_S = 45  # the whole driver run, browser start to exit

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def site(node: str, artifacts: Path) -> Path:
    """The page: index.html plus app.js, the component bundled for the browser by esbuild."""
    site = artifacts / "site"
    site.mkdir(exist_ok=True)
    subprocess.run([node, HERE / "build.mjs", site], cwd=HERE, check=True, timeout=60)
    return site


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin(site: Path) -> Iterator[str]:
    """Serve the page from its own origin: a port other than Herald's."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=5)


def send(live_server: str, creds: Creds, user: str, title: str) -> None:
    response = httpx.post(
        f"{live_server}/v3/notifications",
        json=send_body(user, title=title, notification={"message": "All checks passed"}),
        headers=creds.backend(),
    )
    assert response.status_code == 202, response.text


class Driver:
    """run.mjs in a subprocess: one JSON object per stdout line, the last one its report."""

    def __init__(self, node: str, **options: object) -> None:
        self.proc = subprocess.Popen(
            [node, HERE / "run.mjs", json.dumps({"executablePath": str(CHROMIUM), **options})],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._watchdog = threading.Timer(DRIVER_TIMEOUT_S, self.proc.kill)
        self._watchdog.start()
        self.lines: list[dict[str, Any]] = []

    def next_line(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return None
        self.lines.append(json.loads(line))
        return self.lines[-1]

    def report(self) -> dict[str, Any]:
        while self.next_line() is not None:
            pass
        _, stderr = self.proc.communicate(timeout=DRIVER_TIMEOUT_S)
        self._watchdog.cancel()
        failed = f"driver failed ({self.proc.returncode}):\n{stderr}"
        assert self.proc.returncode == 0, failed
        assert self.lines, failed
        return self.lines[-1]


def checked(result: dict[str, Any], artifacts: Path, name: str) -> str:
    """Keep the report beside the screenshot and check what every run must show."""
    report = json.dumps(result, indent=2)
    (artifacts / f"{name}.json").write_text(report)
    assert result["ok"], report
    assert result["titleFound"], report
    assert not result["blocked"], report
    assert not result["pageErrors"], report
    assert Path(result["screenshot"]).stat().st_size > 0
    return report


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
