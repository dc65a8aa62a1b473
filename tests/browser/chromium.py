"""Where the browser tests find Node.js and Chromium, and what they do when either is missing."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CHROMIUM = Path(os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"))


def missing(reason: str) -> None:
    """Skip, or fail under HERALD_REQUIRE_BROWSER=1 (as .ci/run sets)."""
    if os.environ.get("HERALD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (HERALD_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def node_with_playwright() -> str:
    """The `node` binary, once Chromium is known present and tests/browser/node_modules exists."""
    found = shutil.which("node")
    if found is None:
        missing("browser test needs Node.js (`node` not on PATH)")
    if not CHROMIUM.exists():
        missing(f"browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    assert found is not None
    if not (HERE / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            missing("browser test needs npm to install tests/browser/node_modules")
        assert npm is not None
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)
    return found
