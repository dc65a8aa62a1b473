"""Fixtures for the React inbox tests: Node and Chromium, the bundled pages, their origin.

Set HERALD_REQUIRE_BROWSER=1 to fail instead of skip when Node.js or Chromium is missing;
HERALD_CHROMIUM names another Chromium binary (default /usr/bin/chromium); set
HERALD_BROWSER_ARTIFACTS to a directory to keep the pages, the screenshots and the driver's
reports there.
"""

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser.page import CHROMIUM, HERE, missing

MARKER = HERE / "node_modules" / ".herald-installed"


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("browser test needs Node.js (`node` not on PATH)")
    if not CHROMIUM.exists():
        missing(f"browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    assert found is not None
    # Reinstall whenever the lock file changed, one installer at a time.
    wanted = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not MARKER.exists() or MARKER.read_text() != wanted:
            npm = shutil.which("npm")
            if npm is None:
                missing("browser test needs npm to install tests/browser/node_modules")
            assert npm is not None
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300
            )
            MARKER.write_text(wanted)
    return found


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("HERALD_BROWSER_ARTIFACTS")
    if kept:
        path = Path(kept)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="session")
def site(node: str, artifacts: Path) -> Path:
    """The pages: each an html file and its bundle (the component, by esbuild)."""
    site = artifacts / "site"
    site.mkdir(exist_ok=True)
    subprocess.run([node, HERE / "build.mjs", site], cwd=HERE, check=True, timeout=120)
    return site


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def page_origin(site: Path) -> Iterator[str]:
    """Serve the pages from their own origin: a port other than Herald's."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=5)
