"""A private PostgreSQL server that a test may stop and start: never the shared one.

Built with the binaries the `pgserver` package ships (a dependency, so every checkout has
them) in a temporary data directory, listening on a free 127.0.0.1 port. As root the server
runs as the `pgserver` system user, which pgserver itself creates for the embedded server."""

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pgserver
from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from bench.server import free_port

BIN = Path(pgserver.__file__).resolve().parent / "pginstall" / "bin"
RUN_AS = "pgserver"


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "server.log"
        self._as = _user()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            **self._as,
        )

    def init(self) -> None:
        self.data.mkdir(mode=0o700)
        if self._as:
            entry = pwd.getpwnam(RUN_AS)
            for path in (self.root, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "utf8")
        # A throwaway server: durability across an OS crash is not what these tests measure
        # (a fast stop still writes its shutdown checkpoint), speed on a shared machine is.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n"
                "max_connections = 200\nshared_buffers = '64MB'\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` is what a restart does (backends get 57P01 and go)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        done = subprocess.run(
            [str(BIN / "pg_ctl"), "-D", str(self.data), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            **self._as,
        )
        return done.returncode == 0


def _user() -> dict[str, Any]:
    # PostgreSQL refuses to run as root.
    if os.geteuid() != 0:
        return {}
    ensure_user_exists(RUN_AS)
    # What pgserver does before it runs its binaries as that user.
    ensure_prefix_permissions(BIN)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(BIN, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(BIN.parent / "lib", readable)
    return {"user": RUN_AS, "group": RUN_AS}


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A fresh, running server; stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="herald-pg-"))
    cluster = Cluster(root, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
