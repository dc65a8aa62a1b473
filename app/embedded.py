"""The embedded PostgreSQL (pgserver) used when no database URL is configured."""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("herald.embedded")


class EmbeddedPostgres:
    """A pgserver instance in `data_dir/pgdata`, kept across restarts."""

    def __init__(self, data_dir: Path):
        self.pgdata = (data_dir / "pgdata").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return an asyncpg URL for it."""
        # pgserver narrates every command at INFO, and platformdirs warns when
        # XDG_RUNTIME_DIR is unset (containers, CI): both are noise here.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self.pgdata.mkdir(parents=True, exist_ok=True)
            _forget_dead_handles(self.pgdata / ".handle_pids.json")
            log.info("starting embedded PostgreSQL in %s", self.pgdata)
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="stop"
            )
        return asyncpg_url(self._server.get_uri())

    def stop(self) -> None:
        # uvicorn re-raises SIGTERM after its shutdown, so atexit hooks never run;
        # the lifespan calls this explicitly.
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def asyncpg_url(uri: str) -> str:
    """Turn pgserver's `postgresql://postgres:@/postgres?host=/sock` into an asyncpg URL."""
    parts = urlsplit(uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    user = parts.username or "postgres"
    database = parts.path.lstrip("/") or "postgres"
    return f"postgresql+asyncpg://{user}@/{database}?host={host}"


def _forget_dead_handles(path: Path) -> None:
    """Drop processes that died without releasing their handle (SIGKILL, a timeout).

    pgserver stops the server when its last handle closes; a dead process left in its list
    would keep the server running after every later stop."""
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [p for p in pids if isinstance(p, int) and _alive(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
