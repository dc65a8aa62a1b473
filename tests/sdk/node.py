"""Run the JavaScript SDK drivers in tests/js against a live Herald.

Node.js is optional on a developer's machine: without `node` and `npm` these tests skip
with the reason shown, unless HERALD_REQUIRE_NODE=1 (CI), where they fail instead.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.factories import Creds

JS = Path(__file__).resolve().parent.parent / "js"
DIST = JS / "dist"
MARKER = JS / "node_modules" / ".herald-installed"
# Bundled drivers: name → (source, extra esbuild arguments). The legacy drivers are one source
# bundled once per @engagespot/core 1.x release (npm aliases in package.json).
BUNDLED: dict[str, tuple[str, tuple[str, ...]]] = {
    "core_flow": ("core_flow.mjs", ()),
    "core_probe": ("core_probe.mjs", ()),
    "core_realtime": ("core_realtime.mjs", ()),
    **{
        f"legacy_core_{version}": (
            "legacy_core.mjs",
            (f"--alias:legacy-core=engagespot-core-{version}",),
        )
        for version in ("1.3.8", "1.4.2")
    },
}
MIN_NODE = 18  # global fetch, which @engagespot/core uses
DRIVER_TIMEOUT = 120
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class Js:
    node: str
    path: str  # PATH for the children: node's own directory first

    def run(self, driver: str, config: dict[str, str]) -> dict[str, Any]:
        """Run one driver with `config` as its environment; return its JSON result.

        Bundled drivers (@engagespot/core) run from dist/, the others as they are."""
        script = DIST / f"{driver}.cjs" if driver in BUNDLED else JS / f"{driver}.mjs"
        # A clean environment: no proxy variables for axios to pick up, no NODE_OPTIONS.
        env = {"PATH": self.path, "HOME": os.environ.get("HOME", "/tmp"), **config}
        try:
            done = subprocess.run(
                [self.node, str(script)],
                cwd=JS,
                env=env,
                capture_output=True,
                text=True,
                timeout=DRIVER_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{driver} did not finish in {DRIVER_TIMEOUT}s:\n{exc.stderr!r}")
        result = _last_json(done.stdout)
        if result is None:
            pytest.fail(
                f"{driver} exited {done.returncode} without a JSON result\n"
                f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        if done.returncode != 0:
            # The SDKs log whole axios errors to stderr; the result says what went wrong.
            pytest.fail(
                f"{driver} exited {done.returncode}; failed steps: {result.get('failures')}\n"
                f"{json.dumps(result, indent=1)[:8000]}"
            )
        return result


def _last_json(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _missing(reason: str) -> NoReturn:
    if os.environ.get("HERALD_REQUIRE_NODE") == "1":
        pytest.fail(f"{reason} (HERALD_REQUIRE_NODE=1)")
    pytest.skip(reason)


def prepare() -> Js:
    """Find node and npm, install tests/js if needed and bundle the core drivers."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are not on PATH: the JavaScript SDK tests need Node.js >= 18")
    return _prepared(node, npm)


@cache
def _prepared(node: str, npm: str) -> Js:
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < MIN_NODE:
        _missing(f"node {version} is too old: the JavaScript SDK tests need Node.js >= 18")
    path = os.pathsep.join([str(Path(node).parent), os.environ.get("PATH", "")])
    js = Js(node=node, path=path)
    DIST.mkdir(exist_ok=True)
    # One installer and bundler at a time, across pytest processes too.
    with (DIST / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install(npm, path)
        _bundle(path)
    return js


def _install(npm: str, path: str) -> None:
    wanted = hashlib.sha256((JS / "package-lock.json").read_bytes()).hexdigest()
    if MARKER.exists() and MARKER.read_text() == wanted:
        return
    # --ignore-scripts: esbuild needs no postinstall; its binary comes in the optional
    # @esbuild/<platform> package (and npm 11 would refuse the script anyway).
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci failed in {JS}:\n{done.stdout}\n{done.stderr}")
    MARKER.write_text(wanted)


def _bundle(path: str) -> None:
    for name, (source, extra) in BUNDLED.items():
        done = subprocess.run(
            [
                str(JS / "node_modules" / ".bin" / "esbuild"),
                source,
                "--bundle",
                "--platform=node",
                "--format=cjs",
                "--main-fields=module,main",
                f"--outfile=dist/{name}.cjs",
                "--log-level=warning",
                *extra,
            ],
            cwd=JS,
            env={"PATH": path},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"esbuild could not bundle {source} as {name}:\n{done.stderr}")


def config(base: str, creds: Creds, **extra: str) -> dict[str, str]:
    """The environment every driver reads, plus driver-specific variables."""
    return {
        "HERALD_URL": base,
        "HERALD_API_KEY": creds.api_key,
        "HERALD_API_SECRET": creds.api_secret,
        **extra,
    }


def admin(base: str, method: str, path: str, body: object = None) -> dict[str, Any]:
    response = httpx.request(
        method,
        f"{base}/admin/apps{path}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.is_success, response.text
    result: dict[str, Any] = response.json()
    return result


def new_app(base: str) -> Creds:
    body = admin(base, "POST", "", {"name": "sdk-other"})
    return Creds(body["id"], body["apiKey"], body["apiSecret"])


def signing_key(base: str, creds: Creds) -> str:
    """Have Herald make the app's RS256 key pair; return the private half (shown once)."""
    keys = admin(base, "POST", f"/{creds.id}/signing-keys")
    assert keys["publicKey"].startswith("-----BEGIN PUBLIC KEY-----"), keys
    private: str = keys["privateKey"]
    assert private.startswith("-----BEGIN PRIVATE KEY-----"), keys
    return private


def secure_mode(base: str, creds: Creds, on: bool = True) -> None:
    app = admin(base, "PATCH", f"/{creds.id}", {"secureMode": on})
    assert app["secureMode"] is on, app
