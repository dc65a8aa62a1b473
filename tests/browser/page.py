"""Driving run.mjs (the page in headless Chromium) from a test, and what every run must show."""

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.factories import Creds, send_body

HERE = Path(__file__).parent
CHROMIUM = Path(os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"))
STEP_TIMEOUT_MS = 15_000  # each wait inside the driver
DRIVER_TIMEOUT_S = 45  # the whole driver run, browser start to exit


def missing(reason: str) -> NoReturn:
    if os.environ.get("HERALD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (HERALD_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


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
    assert not result["consoleErrors"], report
    assert Path(result["screenshot"]).stat().st_size > 0
    return report
