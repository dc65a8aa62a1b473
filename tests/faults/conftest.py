import pytest

from tests import shared_server


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The shared PostgreSQL server (tests/shared_server.py); skips, or fails in CI, without it."""
    return shared_server.server()
