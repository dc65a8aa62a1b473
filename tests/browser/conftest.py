import os
from pathlib import Path

import pytest

from tests.browser.chromium import node_with_playwright


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_playwright()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where drivers leave screenshots and reports: HERALD_BROWSER_ARTIFACTS keeps them."""
    kept = os.environ.get("HERALD_BROWSER_ARTIFACTS")
    if kept:
        path = Path(kept)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("browser")
