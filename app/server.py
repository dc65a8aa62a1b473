"""Serve the ASGI app with uvicorn, bounded: sizes, deadlines and a connection cap."""

import logging
import resource

import uvicorn
from starlette.types import ASGIApp

from app.config import Settings
from app.http_protocol import Limits, bounded

log = logging.getLogger("herald.server")
# Descriptors the process needs besides its client connections: database pools, the LISTEN
# connection, the embedded PostgreSQL's pipes, log files, the listening socket.
RESERVED_DESCRIPTORS = 256


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        max_connections=settings.max_connections,
        header_timeout=settings.header_timeout,
        read_timeout=settings.read_timeout,
        keepalive_timeout=settings.keepalive_timeout,
    )


def run(app: ASGIApp, settings: Settings, *, host: str, port: int) -> None:
    """Serve `app` on host:port until SIGINT/SIGTERM."""
    limits = limits_of(settings)
    _open_files_for(limits.max_connections)
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=bounded(limits),
        access_log=False,
        log_config=None,
        # engine.io pings every socket itself; uvicorn's own keepalive doubles idle CPU.
        ws_ping_interval=None,
        # A WebSocket message is a request body by another road.
        ws_max_size=settings.max_body_bytes,
    )


def _open_files_for(connections: int) -> None:
    """Raise the soft open-file limit so the connection cap, not EMFILE, is what refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "HERALD_MAX_CONNECTIONS=%d needs about %d open files, but the limit is %d: "
            "connections past about %d will fail to be accepted",
            connections,
            wanted,
            soft,
            soft - RESERVED_DESCRIPTORS,
        )
