"""The real install, as an operator (and the Dockerfile) does it: build the wheel from what the
Dockerfile's build stage copies, install it into a clean venv outside the checkout, then run
`herald migrate` and `herald serve` from another directory against a PostgreSQL server, send
a notification and read it back from the inbox.

Needs a PostgreSQL server (not the embedded one): HERALD_TEST_PGSERVER_URL, by default
postgres@127.0.0.1:5432 with trust auth. Without one the test skips with the reason, unless
HERALD_REQUIRE_PGSERVER=1 (CI), where it fails instead."""

import json
import os
import secrets
import shutil
import signal
import site
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.server import free_port
from tests import db
from tests.factories import Creds, send_body
from tests.ops.support import fresh_database, pg_server_or_skip

pytestmark = pytest.mark.live

ROOT = db.ROOT


def build_stage_copies() -> list[tuple[list[str], str]]:
    """The (sources, destination) of each COPY in the Dockerfile's build stage."""
    copies: list[tuple[list[str], str]] = []
    stages = 0
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "FROM":
            stages += 1
        elif words[0] == "COPY" and stages == 1:
            copies.append((words[1:-1], words[-1]))
    assert copies, "the Dockerfile's build stage copies nothing"
    return copies


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (exec form)."""
    text = (ROOT / "Dockerfile").read_text()
    after = text[text.index("HEALTHCHECK") :]
    command: list[str] = json.loads(after[after.index("CMD") + 3 :].splitlines()[0])
    return command


# pip with no index (and no user configuration, see pip_env): the test needs no network.
OFFLINE = ["--quiet", "--no-deps", "--no-index"]


def _run(command: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{output}"
    return output


@dataclass
class Install:
    venv: Path
    python: Path
    herald: Path
    cwd: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel, built from the build stage's files, installed --no-deps in a scratch venv.

    Its dependencies come from this venv's site-packages through a .pth file; the checkout,
    and the editable install's path hook, stay out of its sys.path."""
    work = tmp_path_factory.mktemp("install")
    assert not work.is_relative_to(ROOT)
    pip_env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    context = work / "src"
    context.mkdir()
    for sources, destination in build_stage_copies():
        for source in sources:
            origin = ROOT / source
            target = context / destination
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, target / origin.name if destination.endswith("/") else target)
    dist = work / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            *OFFLINE,
            "--no-build-isolation",
            "--wheel-dir",
            dist,
            context,
        ],
        cwd=work,
        env=pip_env,
    )
    (wheel,) = dist.glob("herald-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, env=pip_env)
    python = venv / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        cwd=work,
        env=pip_env,
    ).strip()
    # Plain path lines: the .pth files of this venv (the editable install's) are not read.
    (Path(purelib) / "herald-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(
        # The venv's python runs pip from the dependencies' site-packages.
        [python, "-m", "pip", "install", *OFFLINE, "--ignore-installed", wheel],
        cwd=work,
        env=pip_env,
    )

    cwd = work / "elsewhere"
    cwd.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "PYTHON", "VIRTUAL"))
    }
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONNOUSERSITE="1")
    return Install(venv, python, venv / "bin" / "herald", cwd, env)


def test_the_wheel_installs_itself_not_the_checkout(install: Install) -> None:
    found = json.loads(
        _run(
            [
                install.python,
                "-c",
                "import json, sys, app, app.runtime;"
                " print(json.dumps([app.__file__, str(app.runtime.migrations_dir()), sys.path]))",
            ],
            cwd=install.cwd,
            env=install.env,
        )
    )
    package, migrations, path = found
    assert Path(package).is_relative_to(install.venv), package
    assert Path(migrations).is_relative_to(install.venv), migrations
    assert (Path(migrations) / "versions").is_dir()
    assert str(ROOT) not in path
    assert str(ROOT / "app") not in path


def test_the_wheel_brings_the_redis_client(install: Install) -> None:
    # HERALD_REDIS_URL needs it; python-socketio does not depend on it by itself.
    made = _run(
        [
            install.python,
            "-c",
            "import redis.asyncio, socketio.async_redis_manager as m;"
            " assert m.aioredis is redis.asyncio; print('made')",
        ],
        cwd=install.cwd,
        env=install.env,
    )
    assert made.strip() == "made", made


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the PostgreSQL server (not the embedded one), dropped afterwards."""
    with fresh_database(pg_server_or_skip("the install test"), "install") as url:
        yield url


def test_migrate_then_serve_from_the_wheel(install: Install, database: str) -> None:
    token = secrets.token_urlsafe(24)
    env = {
        **install.env,
        "HERALD_DATABASE_URL": database,
        "HERALD_DATA_DIR": str(install.cwd.parent / "data"),
        "HERALD_ADMIN_TOKEN": token,
        "HERALD_LOG_LEVEL": "info",
        "HERALD_SECRET_KEY": secrets.token_urlsafe(32),
    }
    migrated = _run([install.herald, "migrate"], cwd=install.cwd, env=env)
    assert "Running upgrade  -> 0001_initial" in migrated, migrated

    port = free_port()
    log = install.cwd.parent / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [install.herald, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=install.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    healthcheck = [str(install.python), *healthcheck_command()[1:]]
    probe_env = {**install.env, "HERALD_PORT": str(port)}
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(healthcheck, env=probe_env, capture_output=True).returncode != 0:
            assert proc.poll() is None, f"herald serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"never healthy:\n{log.read_text()}"
            time.sleep(0.2)

        created = httpx.post(
            f"{base}/admin/apps",
            json={"name": "installed"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        creds = Creds(body["id"], body["apiKey"], body["apiSecret"])
        sent = httpx.post(
            f"{base}/v3/notifications",
            json=send_body("alice", title="From the wheel"),
            headers=creds.backend(),
        )
        assert sent.status_code == 202, sent.text

        deadline = time.monotonic() + 10
        while True:
            page = httpx.get(f"{base}/v3/notifications", headers=creds.user("alice"))
            assert page.status_code == 200, page.text
            titles = [n["title"] for n in page.json()["data"]]
            if titles:
                break
            assert time.monotonic() < deadline, "the notification never reached the inbox"
            time.sleep(0.1)
        assert titles == ["From the wheel"]

        # The admin console's assets come from the installed wheel, not a CDN or the checkout.
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200, docs.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            assert f"/console/static/{asset}" in docs.text + httpx.get(f"{base}/redoc").text
            fetched = httpx.get(f"{base}/console/static/{asset}")
            assert fetched.status_code == 200, asset
            assert len(fetched.content) > 10_000, asset
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
    served = log.read_text()
    # uvicorn re-raises the SIGTERM it handled once shut down, so the exit says "terminated".
    assert code in (0, -signal.SIGTERM), served
    assert "Application shutdown complete" in served, served
    assert "starting on" in served, served
    assert "Database    postgresql://postgres@127.0.0.1:5432/" in served, served
    # `herald serve` found the schema at head: it had nothing left to run.
    assert "Running upgrade" not in served, served
    assert "Traceback" not in served, served
    # The same healthcheck fails once the server is gone.
    assert subprocess.run(healthcheck, env=probe_env, capture_output=True).returncode != 0
