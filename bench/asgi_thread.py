"""An ASGI app served by uvicorn from a daemon thread of this process, on 127.0.0.1: the peers
Herald delivers to in the benchmarks and in the tests (tests import this; bench never imports
tests, and neither is in the installed package)."""

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path

import uvicorn
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp


class AsgiThread:
    """uvicorn on 127.0.0.1:`port` (0: a free one), plain HTTP, or TLS from `certfile` and
    `keyfile` or from a ready `ssl_context`. `start` returns once uvicorn is serving."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        what: str = "peer",
        port: int = 0,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.what = what
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._app = app
        self._tls = (certfile, keyfile, ssl_context)

    def start(self) -> "AsgiThread":
        """Serve (again, after `stop`: on the same port when it was given)."""
        certfile, keyfile, ssl_context = self._tls
        config = uvicorn.Config(
            self._app,
            log_level="error",
            lifespan="off",
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
        )
        if ssl_context is not None:
            # uvicorn builds its TLS context from files; hand it this one instead.
            config.load()
            config.ssl = ssl_context
        self.server = uvicorn.Server(config)
        sock = socket.socket()
        # A fixed port is bound again by a restarted peer while the old socket is in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[sock])

        self.thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.what} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class HypercornThread:
    """An ASGI app served by hypercorn over TLS (HTTP/2 and HTTP/1.1) on 127.0.0.1, in a thread
    with its own event loop: for peers that must speak HTTP/2 (APNs), which uvicorn does not."""

    def __init__(self, app: ASGIApp, *, certfile: Path, keyfile: Path, backlog: int = 128) -> None:
        self.app = app
        self.port = 0
        config = Config()
        config.certfile, config.keyfile = str(certfile), str(keyfile)
        config.alpn_protocols = ["h2", "http/1.1"]
        # Longer than the client pool keeps idle connections, as real push services do.
        config.keep_alive_timeout = 75
        config.accesslog = None
        config.errorlog = None
        self._config = config
        self._backlog = backlog

    def start(self) -> "HypercornThread":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(self._backlog)
        self.port = sock.getsockname()[1]
        # A pre-bound socket: no port race between picking a free port and binding it.
        self._config.bind = [f"fd://{sock.detach()}"]
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            # Starlette is an ASGI app; hypercorn's type names its own ASGI types.
            await serve(self.app, self._config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        self._loop.run_until_complete(main())

    def url(self, path: str = "") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
