"""The admin console (/docs) and /redoc work offline: in headless Chromium, with every request to
a host other than Herald's aborted, the pages render and /docs drives the admin API.

Needs Node.js and Chromium as test_react_inbox.py does (HERALD_REQUIRE_BROWSER=1 makes their
absence a failure); HERALD_BROWSER_ARTIFACTS keeps the screenshots and the report."""

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.page import CHROMIUM, HERE
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.live
DRIVER_TIMEOUT_S = 60


def drive(node: str, **options: object) -> dict[str, Any]:
    run = subprocess.run(
        [node, HERE / "console.mjs", json.dumps({"executablePath": str(CHROMIUM), **options})],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return report


def test_console_works_with_every_other_host_blocked(
    node: str, artifacts: Path, live_server: str
) -> None:
    result = drive(
        node, base=live_server, adminToken=ADMIN_TOKEN, outDir=str(artifacts), timeoutMs=15_000
    )
    report = json.dumps(result, indent=2)
    (artifacts / "console.json").write_text(report)
    assert result["ok"], report
    # No request for another host reached the network (the interception aborts and lists any):
    # no CDN, no fonts, no favicon, no validator badge. ReDoc's Redocly logo is the one thing
    # the pages ask another host for, and the browser refuses it itself (the pages' CSP).
    assert result["blocked"] == [], report
    elsewhere = [r for r in result["requests"] if not r.split(" ", 1)[1].startswith(live_server)]
    refused = [r.rsplit(" ", 1)[0] for r in result["failedRequests"] if r.endswith(" csp")]
    assert sorted(elsewhere) == sorted(refused), report
    assert not [r for r in result["failedRequests"] if not r.endswith(" csp")], report
    assert not result["pageErrors"], report

    docs = result["docs"]
    assert docs["title"].startswith("Herald"), report
    assert docs["operations"] >= 40, report
    created, rotated = docs["created"], docs["rotated"]
    assert created["status"] == 201, report
    assert created["body"]["name"] == "My app", report  # the documented example, as sent
    assert rotated["status"] == 200, report
    assert rotated["body"]["id"] == created["body"]["id"], report
    assert rotated["body"]["apiSecret"] != created["body"]["apiSecret"], report
    # What the page showed is what Herald now holds.
    stored = httpx.get(
        f"{live_server}/admin/apps/{created['body']['id']}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert stored["apiSecret"] == rotated["body"]["apiSecret"]

    assert result["redoc"]["title"].startswith("Herald"), report
    assert result["redoc"]["operations"] >= 40, report
    assert any(r.endswith("/console/static/redoc.standalone.js") for r in result["requests"])
