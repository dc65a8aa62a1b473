"""Serve the ASGI app with uvicorn, bounded: sizes, deadlines and a connection cap; in one
process, or in several sharing the port."""

import contextlib
import ctypes
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from app.config import Settings
from app.http_protocol import Limits, bounded
from app.kit import affinity

log = logging.getLogger("herald.server")
# Descriptors the process needs besides its client connections: database pools, the LISTEN
# connection, the embedded PostgreSQL's pipes, log files, the listening socket.
RESERVED_DESCRIPTORS = 256
BACKLOG = 2048
# uvicorn's own exit code for a server that failed its start-up (the lifespan, the bind).
STARTUP_FAILED = 3
# A child that dies is replaced, unless children die more often than this: then something is
# wrong that a restart will not fix, and the server stops (exit 1) for its supervisor to see.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# The in-process queue worker finishes its jobs within 30 s (app/main.py); a little more.
STOP_GRACE = 40
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    """Serve `app` on host:port in this process until SIGINT/SIGTERM."""
    server = uvicorn.Server(_config(app, settings, host=host, port=port))
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILED)


def _config(app: ASGIApp, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    limits = limits_of(settings)
    _open_files_for(limits.max_connections)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded(limits),
        access_log=False,
        log_config=None,
        backlog=BACKLOG,
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


def serve(make_app: Callable[[], ASGIApp], settings: Settings, *, host: str, port: int) -> None:
    """Serve on host:port until SIGINT/SIGTERM: in this process, or in `settings.workers`
    children sharing the port, each with its own app (and so its own listeners and worker)."""
    if settings.workers == 1:
        if settings.pin_cpus:
            _pin(0)
        run(make_app(), settings, host=host, port=port)
        return
    Supervisor(make_app, settings, host=host, port=port).run()


class Supervisor:
    """Forks the serving processes, replaces one that dies, and stops them all on a signal.

    The parent binds and listens on the port once; every child accepts from that one
    inherited socket. Measured against a socket of each child's own with SO_REUSEPORT
    (wrk, 32 connections, /health, 2 children): the same req/s within the machine's noise,
    and the connections split 13/19 and 12/20 against 14/18 and 9/23. What decides: with
    one queue, a busy child accepts less (a child waiting in its loop takes the connection
    first), a child that dies takes no queued connection down with it, and a replacement
    needs no bind of its own. Forking after start-up keeps the once-only work (migrations, the
    default app, the admin token, the embedded database) in the parent."""

    def __init__(
        self, make_app: Callable[[], ASGIApp], settings: Settings, *, host: str, port: int
    ):
        self.make_app = make_app
        self.settings = settings
        self.host = host
        self.port = port
        self.children: dict[int, int] = {}  # pid → slot
        self.stopping = False
        self.deaths: list[float] = []
        self.pid = os.getpid()

    def run(self) -> None:
        try:
            sock = _listening_socket(self.host, self.port)
        except OSError as exc:
            # Taken since the check before start-up: the CLI says so as one line.
            log.error("cannot listen on %s:%d: %s", self.host, self.port, exc.strerror or exc)
            sys.exit(STARTUP_FAILED)
        # uvicorn says "running on" only for a socket of its own; this is the one line here.
        log.info(
            "serving on %s:%d in %d processes (Ctrl-C to quit)",
            self.host,
            self.port,
            self.settings.workers,
        )
        previous = {sig: signal.signal(sig, self._stop) for sig in STOP_SIGNALS}
        signal.signal(signal.SIGALRM, self._kill)
        failed: str | None = None
        try:
            for slot in range(self.settings.workers):
                self._spawn(slot, sock)
            while self.children:
                pid, status = os.waitpid(-1, 0)
                if pid not in self.children:
                    continue
                slot = self.children.pop(pid)
                if self.stopping:
                    continue
                failed = self._died(slot, pid, status, sock)
                if failed is not None:
                    self._stop(signal.SIGTERM, None)
        finally:
            signal.alarm(0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
        if failed is not None:
            raise ServerFailed(failed)

    def _died(self, slot: int, pid: int, status: int, sock: socket.socket) -> str | None:
        """Log a child's death; replace it, or say why the server must stop."""
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if code == STARTUP_FAILED:
            return f"serving process {slot} (pid {pid}) could not start; stopping"
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
        if len(self.deaths) > MAX_RESTARTS:
            return (
                f"serving process {slot} (pid {pid}) {how}, the {len(self.deaths)}th death "
                f"within {RESTART_WINDOW:g} s; stopping"
            )
        log.error("serving process %d (pid %d) %s; starting another", slot, pid, how)
        self._spawn(slot, sock)
        return None

    def _spawn(self, slot: int, sock: socket.socket) -> None:
        if self.stopping:
            return
        # Blocked across the fork: the child must not run the parent's handlers (they would
        # signal its siblings) before it has put back the defaults.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid:
            self.children[pid] = slot
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return
        code = 1
        try:
            for sig in (*STOP_SIGNALS, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            code = _child(self.make_app, self.settings, sock, self.pid, slot)
        except BaseException:
            log.exception("serving process %d failed", slot)
        finally:
            # Never return into the parent's stack: its cleanup (the embedded database's
            # stop) is the parent's alone.
            logging.shutdown()
            os._exit(code)

    def _stop(self, _sig: int, _frame: FrameType | None) -> None:
        # A second Ctrl-C reaches the children from the terminal itself (and makes uvicorn
        # give up waiting); from here they only ever get SIGTERM, a graceful stop.
        if not self.stopping:
            self.stopping = True
            signal.alarm(STOP_GRACE)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _kill(self, _sig: int, _frame: FrameType | None) -> None:
        for pid in self.children:
            log.error(
                "serving process (pid %d) did not stop within %d s; killing it", pid, STOP_GRACE
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class ServerFailed(Exception):
    """A serving process could not start, or they kept dying."""


def _child(
    make_app: Callable[[], ASGIApp],
    settings: Settings,
    sock: socket.socket,
    parent: int,
    slot: int,
) -> int:
    _die_with_parent(parent)
    if settings.pin_cpus:
        _pin(slot)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(_config(make_app(), settings, host=host, port=port))
    # uvicorn ends a signalled shutdown by re-raising the signal: the child then dies of it,
    # which the parent expects while it is stopping.
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILED


def _pin(slot: int) -> None:
    # Before the app is made: the threads it starts inherit the pin, and the queue worker
    # it starts undoes it (app/worker.py).
    cpu = affinity.pin(slot)
    if cpu is None:
        log.warning(
            "HERALD_PIN_CPUS: serving process %d could not be pinned; it runs on any CPU", slot
        )
    else:
        log.info("serving process %d (pid %d) pinned to CPU %d", slot, os.getpid(), cpu)


def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    return sock


def _die_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM to this child if the parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: a dead parent leaves the child serving
        return
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(0)
