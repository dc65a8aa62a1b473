"""The queue worker stops at once when told, whatever it is doing."""

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.worker import Worker


async def test_stop_while_connecting(engine: AsyncEngine) -> None:
    # A peer that accepts the connection and never answers PostgreSQL's start-up: asyncpg
    # waits its full 10 s connect timeout unless the stop cuts it short.
    accepted = asyncio.Event()
    peers: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        accepted.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    worker = Worker(f"postgresql://herald@127.0.0.1:{port}/herald", make_sessionmaker(engine))
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(accepted.wait(), timeout=10)
        assert not running.done()
        worker.stop()
        await asyncio.wait_for(running, timeout=1)
    finally:
        running.cancel()
        for writer in peers:
            writer.close()
        server.close()
        await server.wait_closed()


class _Lost(logging.Handler):
    """Sets `event` once the worker has reported `count` lost connections."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "connection lost" in record.getMessage():
            self.count -= 1
            if self.count <= 0:
                self.event.set()


async def test_stop_while_waiting_to_reconnect(engine: AsyncEngine) -> None:
    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    worker = Worker(f"postgresql://herald@127.0.0.1:{port}/herald", make_sessionmaker(engine))
    # The worker logs each loss just before it backs off: after the third, for 2 s.
    lost = _Lost(3)
    logger = logging.getLogger("herald.worker")
    logger.addHandler(lost)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(lost.event.wait(), timeout=10)
        worker.stop()
        await asyncio.wait_for(running, timeout=1)
    finally:
        logger.removeHandler(lost)
        running.cancel()
        server.close()
        await server.wait_closed()
