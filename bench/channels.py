"""Benchmark deliveries beyond the inbox: e-mails/s, webhooks/s and web pushes/s through the
worker against local peers, the inbox read p99 while they run against idle, and 1-recipient
inbox-only sends before and after the channels change, all in one run.

    python -m bench.channels            # 2,000 each of e-mails, webhooks, web pushes; 3 rounds
                                        # of 600 sends
    python -m bench.channels --quick    # a smoke run in a few seconds
    python -m bench.channels --sms      # SMS through a Twilio-shaped peer, webhooks as baseline
    python -m bench.channels --push     # FCM, APNs, Expo pushes/s (and webhooks/s as the
                                        # same-run baseline), inbox p99 while each runs

Runs on a PostgreSQL server (--database-url, default the local one on 127.0.0.1:5432) in
fresh databases. Peers run in this process's threads: an aiosmtpd SMTP server (plain SMTP, no
TLS: the engine's cost, not OpenSSL's), a uvicorn HTTP receiver answering 200, and a push
service over TLS (trustme; Herald gets its CA as SSL_CERT_FILE) answering 201. Herald is
`python -m app.cli serve` with its in-process worker (HERALD_ALLOW_PRIVATE_TARGETS=true,
HERALD_VAPID_SUBJECT set: web push encrypts each message and signs with the app's VAPID key).

"Before" is the base commit (--base, default the parent of the channels work) exported with
`git archive` into a temp dir and served from there on its own database; "after" is this
checkout. Their 1-recipient sends alternate round by round. Appends a section to
bench/RESULTS.md (not for --quick unless --results is given)."""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import asyncpg
import http_ece
import httpx
import trustme
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.asgi_thread import AsgiThread
from bench.load import Processes
from bench.push_peers import PushPeers, apns_config, service_account
from bench.seed import progress
from bench.server import asyncpg_url, drop, free_port, herald, plain, postmaster_pid, recreate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
BASE = "fa21715"  # the commit before the channels work ("Make room for channels")
ADMIN = "bench-admin-token-" + secrets.token_hex(8)


# -- peers ---------------------------------------------------------------------------------


class Counting:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.count += 1
        return "250 OK"


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        app = Starlette(routes=[Route("/{p:path}", self._hit, methods=["POST"])])
        self.served = AsgiThread(app, what="webhook receiver").start()
        self.port = self.served.port

    async def _hit(self, request: Request) -> Response:
        await request.body()
        self.count += 1
        return Response('{"ok":true}')

    def stop(self) -> None:
        self.served.stop()


# -- web push ------------------------------------------------------------------------------


class PushService:
    """A push service over TLS (a trustme certificate; Herald trusts its CA through
    SSL_CERT_FILE): answers 201 and counts. It checks sizes but decrypts only the first
    message (with http_ece and the browser's key), so its CPU stays out of Herald's way."""

    def __init__(self, directory: Path) -> None:
        self.count = 0
        self.oversized = 0
        self.first: bytes | None = None
        ca = trustme.CA()
        self.ca_file = directory / "push-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert = ca.issue_cert("127.0.0.1")
        certfile, keyfile = directory / "push-cert.pem", directory / "push-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = base64.urlsafe_b64encode(point).rstrip(b"=").decode()
        app = Starlette(routes=[Route("/push/{name}", self._hit, methods=["POST"])])
        served = AsgiThread(app, what="push service", certfile=certfile, keyfile=keyfile)
        self.served = served.start()
        self.port = served.port

    def subscription(self, name: str) -> dict[str, Any]:
        auth = base64.urlsafe_b64encode(self.auth).rstrip(b"=").decode()
        return {
            "endpoint": f"https://127.0.0.1:{self.port}/push/{name}",
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": auth},
        }

    async def _hit(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > 4096:
            self.oversized += 1
            return Response(status_code=413)
        if self.first is None:
            self.first = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth)
        self.count += 1
        return Response(status_code=201)

    def stop(self) -> None:
        self.served.stop()


async def seed_subscriptions(dsn: str, app_id: int, push: PushService, n: int) -> None:
    """One browser subscription per bench user (u0 … u{n-1}), each its own endpoint."""
    conn = await asyncpg.connect(dsn)
    try:
        template = json.dumps(push.subscription("NAME"))
        await conn.execute(
            """
            INSERT INTO devices (user_id, device_identifier, device_type, web_push_subscription)
            SELECT id, 'browser', 'browser', replace($3::text, 'NAME', identifier)::jsonb
            FROM users WHERE app_id = $1 AND identifier ~ '^u[0-9]+$'
              AND substr(identifier, 2)::int < $2
            """,
            app_id,
            n,
            template,
        )
    finally:
        await conn.close()


# -- load ----------------------------------------------------------------------------------


async def closed_loop(
    n: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `call(i)` for i < n, `concurrency` at a time; (elapsed s, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            t = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - t) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def app_with(client: httpx.AsyncClient, channels: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = (await client.post("/admin/apps", json={"name": "bench"}, headers=headers)).json()
    r = await client.patch(
        f"/admin/apps/{created['id']}", json={"channels": channels}, headers=headers
    )
    r.raise_for_status()
    return dict(created)


def backend(app: dict[str, Any]) -> dict[str, str]:
    return {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-API-SECRET": app["apiSecret"]}


async def one_recipient_sends(base: str, app: dict[str, Any], n: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = backend(app)

        async def call(i: int) -> None:
            r = await client.post(
                "/v3/notifications",
                json={
                    "notification": {"title": f"t{i}"},
                    "sendTo": {"recipients": [f"s{i % 200}"]},
                },
                headers=headers,
            )
            assert r.status_code == 202, r.text

        elapsed, _ = await closed_loop(n, concurrency, call)
    return n / elapsed


async def inbox_reads(
    base: str, app: dict[str, Any], seconds: float, concurrency: int
) -> list[float]:
    headers = {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-USER-ID": "reader"}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def lane() -> None:
            while time.monotonic() < deadline:
                t = time.perf_counter()
                r = await client.get("/v3/notifications", headers=headers)
                assert r.status_code == 200, r.text
                latencies.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies


async def deliver(
    base: str,
    dsn: str,
    app: dict[str, Any],
    *,
    channel: str,
    n: int,
    per_send: int,
    done: Callable[[], int],
) -> float:
    """Send `n` deliveries on `channel` (sends of `per_send` recipients); seconds until the
    peer has them all, checked against the delivery rows."""
    start_count = done()
    conn = await asyncpg.connect(dsn)
    query = "SELECT count(*) FROM deliveries WHERE app_id = $1 AND channel = $2 AND status = 'sent'"
    try:
        already = int(await conn.fetchval(query, int(app["id"]), channel))
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            started = time.perf_counter()
            for s in range(n // per_send):
                recipients = [f"u{s * per_send + i}" for i in range(per_send)]
                r = await client.post(
                    "/v3/notifications",
                    json={
                        "notification": {"title": "Bench", "message": "Body"},
                        "sendTo": {"recipients": recipients},
                        "override": {"channels": [channel]},
                    },
                    headers=backend(app),
                )
                assert r.status_code == 202, r.text
            # Done when every row says sent (the peer counts a message a moment earlier).
            while int(await conn.fetchval(query, int(app["id"]), channel)) - already < n:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    assert done() - start_count >= n, f"the peer got {done() - start_count} of {n}"
    return elapsed


def _entered(
    manager: contextlib.AbstractContextManager[tuple[str, subprocess.Popen[bytes]]],
) -> tuple[contextlib.ExitStack, tuple[str, subprocess.Popen[bytes]]]:
    stack = contextlib.ExitStack()
    return stack, stack.enter_context(manager)


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def export_base(commit: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="herald-base-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


async def seed_users(dsn: str, app_id: int, n: int, smtp_port: int, hook_url: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO users (app_id, identifier, profile)
            SELECT $1, 'u' || i, jsonb_build_object('email', 'u' || i || '@bench.test',
                                                   'webhookUrl', $2::text)
            FROM generate_series(0, $3 - 1) AS i
            """,
            app_id,
            hook_url,
            n,
        )
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    server = asyncpg_url(args.database_url)
    after_db = await recreate(server, args.database_name)
    before_db = await recreate(server, args.database_name + "_base")
    base_dir = export_base(args.base)
    smtp_port = free_port()
    counting = Counting()
    smtp = Controller(counting, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    receiver = Receiver()
    push = PushService(Path(tempfile.mkdtemp(prefix="herald-bench-push-")))
    env = {
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_SECRET_KEY": secrets.token_urlsafe(40),
        # Web push: on for every app with webPush in its channels; the push service's CA.
        "HERALD_VAPID_SUBJECT": "mailto:bench@herald-notifications.net",
        "SSL_CERT_FILE": str(push.ca_file),
    }
    out: dict[str, Any] = {"load_start": loadavg()}
    try:
        # Both servers start at once: most of a quick run is their migrations and start-up.
        with ThreadPoolExecutor(2) as pool:
            starting = [
                pool.submit(_entered, herald(after_db, admin_token=ADMIN, extra_env=env)),
                pool.submit(_entered, herald(before_db, admin_token=ADMIN, cwd=base_dir)),
            ]
            entered = [f.result() for f in starting]
        with entered[0][0], entered[1][0]:
            after, before = entered[0][1][0], entered[1][1][0]
            async with httpx.AsyncClient(base_url=after, timeout=60) as client:
                channel_app = await app_with(client, ["inApp", "email", "webhook", "webPush"])
                headers = {"Authorization": f"Bearer {ADMIN}"}
                for channel, body in (
                    (
                        "email",
                        {
                            "provider": "smtp_email",
                            "config": {
                                "SMTP_HOST": "127.0.0.1",
                                "SMTP_PORT": smtp_port,
                                "FROM_EMAIL": "b@bench.test",
                            },
                        },
                    ),
                    (
                        "webhook",
                        {"provider": "default_webhook", "config": {"SIGNING_KEY": "bench-key"}},
                    ),
                ):
                    r = await client.post(
                        f"/admin/apps/{channel_app['id']}/channels/{channel}/providers",
                        json=body,
                        headers=headers,
                    )
                    r.raise_for_status()
                inbox_app_after = await app_with(client, ["inApp"])
                r = await client.post(
                    "/v3/notifications",
                    json={"notification": {"title": "seed"}, "sendTo": {"recipients": ["reader"]}},
                    headers=backend(channel_app),
                )
                r.raise_for_status()
            async with httpx.AsyncClient(base_url=before, timeout=60) as client:
                inbox_app_before = await app_with(client, ["inApp"])
            dsn = plain(after_db)
            await seed_users(
                dsn,
                int(channel_app["id"]),
                args.deliveries,
                smtp_port,
                f"http://127.0.0.1:{receiver.port}/hook",
            )
            await seed_subscriptions(dsn, int(channel_app["id"]), push, args.deliveries)

            async def through_worker(channel: str, done: Callable[[], int]) -> float:
                """Seconds for --deliveries deliveries on `channel`, in sends of 100."""
                per_send = min(100, args.deliveries)
                return await deliver(
                    after,
                    dsn,
                    channel_app,
                    channel=channel,
                    n=args.deliveries,
                    per_send=per_send,
                    done=done,
                )

            progress("1-recipient inbox-only sends, before and after, alternating")
            rates: dict[str, list[float]] = {"before": [], "after": []}
            await one_recipient_sends(before, inbox_app_before, 100, args.concurrency)  # warm-up
            await one_recipient_sends(after, inbox_app_after, 100, args.concurrency)
            for _ in range(args.rounds):
                rates["before"].append(
                    await one_recipient_sends(
                        before, inbox_app_before, args.sends, args.concurrency
                    )
                )
                rates["after"].append(
                    await one_recipient_sends(after, inbox_app_after, args.sends, args.concurrency)
                )
            out["sends"] = {k: statistics.median(v) for k, v in rates.items() if v}
            out["send_rounds"] = rates

            progress("inbox reads, idle")
            idle = await inbox_reads(after, channel_app, args.read_seconds, 4)
            progress("e-mails through the worker, with inbox reads")
            reads_task = asyncio.create_task(inbox_reads(after, channel_app, args.read_seconds, 4))
            email_s = await through_worker("email", lambda: counting.count)
            busy = await reads_task
            progress("webhooks through the worker")
            hook_s = await through_worker("webhook", lambda: receiver.count)
            progress("web pushes through the worker, with inbox reads")
            reads_task = asyncio.create_task(inbox_reads(after, channel_app, args.read_seconds, 4))
            push_s = await through_worker("webPush", lambda: push.count)
            push_busy = await reads_task
            assert push.oversized == 0, f"{push.oversized} pushes over 4096 bytes"
            assert push.first is not None
            assert b'"engagespot"' in push.first, push.first
            out.update(
                pushes_per_s=args.deliveries / push_s,
                push_p50=pct(push_busy, 0.5),
                push_p99=pct(push_busy, 0.99),
                push_n=len(push_busy),
            )
            out.update(
                emails_per_s=args.deliveries / email_s,
                webhooks_per_s=args.deliveries / hook_s,
                idle_p50=pct(idle, 0.5),
                idle_p99=pct(idle, 0.99),
                idle_n=len(idle),
                busy_p50=pct(busy, 0.5),
                busy_p99=pct(busy, 0.99),
                busy_n=len(busy),
            )
    finally:
        smtp.stop()
        receiver.stop()
        push.stop()
        await drop(server, args.database_name)
        await drop(server, args.database_name + "_base")
    out["load_end"] = loadavg()
    return out


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in values)


def _machine_line(out: dict[str, Any]) -> str:
    machine = f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    load = f"load average {' '.join(out['load_start'])} at start, {' '.join(out['load_end'])}"
    return (
        f"- Machine: {machine}, Python {platform.python_version()}; {load} at end "
        "(other engineers' jobs shared this machine)"
    )


def _command_line() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"- Command: `python -m bench.channels {shlex.join(sys.argv[1:])}`; Herald {head}"


def render(args: argparse.Namespace, out: dict[str, Any]) -> str:
    s, rounds = out["sends"], out["send_rounds"]
    idle = f"p50 {out['idle_p50']:.1f} ms, p99 {out['idle_p99']:.1f} ms ({out['idle_n']} reads)"
    busy = f"p50 {out['busy_p50']:.1f} ms, p99 {out['busy_p99']:.1f} ms ({out['busy_n']} reads)"
    push = f"p50 {out['push_p50']:.1f} ms, p99 {out['push_p99']:.1f} ms ({out['push_n']} reads)"
    n = args.deliveries
    lines = [
        f"## Channels: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        _machine_line(out),
        f"{_command_line()}; before = {args.base} exported with `git archive`, on its own database",
        "- Peers in the bench process: aiosmtpd (plain SMTP), a uvicorn receiver answering "
        "200 and a uvicorn push service over TLS answering 201; one `herald serve` with its "
        "in-process worker (16 delivery slots)",
        "",
        "| what | result |",
        "|---|---|",
        f"| e-mails through the worker ({n}, sends of 100) | **{out['emails_per_s']:.0f}/s** |",
        f"| signed webhooks through the worker ({n}) | **{out['webhooks_per_s']:.0f}/s** |",
        f"| inbox page, idle (4 readers) | {idle} |",
        f"| inbox page while the e-mails go out | {busy}; "
        f"p99 {out['busy_p99'] / out['idle_p99']:.2f}x idle |",
        f"| web pushes through the worker ({n}; aes128gcm + VAPID, TLS push service) | "
        f"**{out['pushes_per_s']:.0f}/s** |",
        f"| inbox page while the web pushes go out | {push}; "
        f"p99 {out['push_p99'] / out['idle_p99']:.2f}x idle |",
        f"| 1-recipient sends, before, concurrency {args.concurrency} | "
        f"{s['before']:.0f}/s (rounds {_rounds(rounds['before'])}) |",
        f"| 1-recipient sends, after (inbox-only app) | {s['after']:.0f}/s "
        f"(rounds {_rounds(rounds['after'])}); {s['after'] / s['before']:.2f}x before |",
        "",
    ]
    return "\n".join(lines)


# -- SMS (--sms) ---------------------------------------------------------------------------


class TwilioReceiver(Receiver):
    """A Twilio-shaped Messages API: checks HTTP Basic and the form, answers 201 with a sid."""

    SID, TOKEN = "AC" + "0" * 32, "bench-twilio-token"

    async def _hit(self, request: Request) -> Response:
        body = (await request.body()).decode()
        expected = "Basic " + base64.b64encode(f"{self.SID}:{self.TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected or "To=%2B" not in body:
            return Response('{"code": 20003, "message": "Authenticate"}', status_code=401)
        self.count += 1
        return Response(f'{{"sid": "SM{self.count:032d}", "status": "queued"}}', status_code=201)


async def seed_phone_users(dsn: str, app_id: int, n: int, hook_url: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO users (app_id, identifier, profile)
            SELECT $1, 'u' || i, jsonb_build_object(
                'phoneNumber', '+1415' || lpad(i::text, 7, '0'), 'webhookUrl', $2::text)
            FROM generate_series(0, $3 - 1) AS i
            """,
            app_id,
            hook_url,
            n,
        )
    finally:
        await conn.close()


def counter(peer: Receiver) -> Callable[[], int]:
    return lambda: peer.count


async def sms_main_async(args: argparse.Namespace) -> dict[str, Any]:
    """SMS/s through the worker against the Twilio-shaped peer, with the inbox p99 while they
    go out; signed webhooks through the same worker and HTTP pool are the baseline (the SMS
    path adds the hand-over mark: one more short transaction per message)."""
    server = asyncpg_url(args.database_url)
    db_url = await recreate(server, args.database_name)
    twilio, hooks = TwilioReceiver(), Receiver()
    env = {
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_SECRET_KEY": secrets.token_urlsafe(40),
        "HERALD_TWILIO_BASE_URL": f"http://127.0.0.1:{twilio.port}",
    }
    out: dict[str, Any] = {"load_start": loadavg()}
    try:
        with herald(db_url, admin_token=ADMIN, extra_env=env) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                app = await app_with(client, ["inApp", "sms", "webhook"])
                headers = {"Authorization": f"Bearer {ADMIN}"}
                for channel, body in (
                    (
                        "sms",
                        {
                            "provider": "twilio_sms",
                            "config": {
                                "TWILIO_ACCOUNT_SID": TwilioReceiver.SID,
                                "TWILIO_AUTH_TOKEN": TwilioReceiver.TOKEN,
                                "TWILIO_FROM_NUMBER": "+15005550006",
                            },
                        },
                    ),
                    ("webhook", {"provider": "default_webhook", "config": {"SIGNING_KEY": "k"}}),
                ):
                    r = await client.post(
                        f"/admin/apps/{app['id']}/channels/{channel}/providers",
                        json=body,
                        headers=headers,
                    )
                    r.raise_for_status()
                r = await client.post(
                    "/v3/notifications",
                    json={"notification": {"title": "seed"}, "sendTo": {"recipients": ["reader"]}},
                    headers=backend(app),
                )
                r.raise_for_status()
            dsn = plain(db_url)
            await seed_phone_users(
                dsn, int(app["id"]), args.deliveries, f"http://127.0.0.1:{hooks.port}/hook"
            )
            per_send = min(100, args.deliveries)
            progress("inbox reads, idle")
            idle = await inbox_reads(base, app, args.read_seconds, 4)
            measured: dict[str, tuple[float, list[float]]] = {}
            for channel, peer in (("webhook", hooks), ("sms", twilio)):
                progress(f"{channel} through the worker, with inbox reads")
                reads = asyncio.create_task(inbox_reads(base, app, args.read_seconds, 4))
                seconds = await deliver(
                    base,
                    dsn,
                    app,
                    channel=channel,
                    n=args.deliveries,
                    per_send=per_send,
                    done=counter(peer),
                )
                measured[channel] = (args.deliveries / seconds, await reads)
    finally:
        twilio.stop()
        hooks.stop()
        await drop(server, args.database_name)
    out.update(
        sms_per_s=measured["sms"][0],
        webhooks_per_s=measured["webhook"][0],
        idle_p99=pct(idle, 0.99),
        idle_n=len(idle),
        sms_p99=pct(measured["sms"][1], 0.99),
        sms_reads=len(measured["sms"][1]),
        hooks_p99=pct(measured["webhook"][1], 0.99),
    )
    out["load_end"] = loadavg()
    return out


def render_sms(args: argparse.Namespace, out: dict[str, Any]) -> str:
    n = args.deliveries
    return "\n".join(
        [
            f"## Channels, SMS: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            _machine_line(out),
            _command_line(),
            "- Peers in the bench process (uvicorn, plain HTTP): a Twilio-shaped Messages API "
            "(Basic auth, 201 with a sid) and a webhook receiver; one `herald serve` with its "
            "in-process worker (16 delivery slots, 8 per provider)",
            "",
            "| what | result |",
            "|---|---|",
            f"| SMS through the worker ({n}, sends of {min(100, n)}, Twilio-shaped peer) | "
            f"**{out['sms_per_s']:.0f}/s**; {out['sms_per_s'] / out['webhooks_per_s']:.2f}x "
            "the webhook rate |",
            f"| signed webhooks through the worker ({n}), baseline | "
            f"{out['webhooks_per_s']:.0f}/s |",
            f"| inbox page p99, idle (4 readers) | {out['idle_p99']:.1f} ms "
            f"({out['idle_n']} reads) |",
            f"| inbox page p99 while the SMS go out | {out['sms_p99']:.1f} ms "
            f"({out['sms_reads']} reads); {out['sms_p99'] / out['idle_p99']:.2f}x idle "
            f"(webhooks: {out['hooks_p99']:.1f} ms) |",
            "",
        ]
    )


# -- mobile push (--push) ------------------------------------------------------------------


def _push_token(provider: str, i: int) -> str:
    if provider == "apns":
        return f"{i:064x}"
    if provider == "expo":
        return f"ExponentPushToken[bench-{i}]"
    return f"fcm-bench-{i}"


async def seed_push_users(dsn: str, app_id: int, n: int, provider: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO users (app_id, identifier, profile) VALUES ($1, $2, $3::jsonb)",
            [
                (app_id, f"u{i}", f'{{"{provider}": {{"tokens": ["{_push_token(provider, i)}"]}}}}')
                for i in range(n)
            ],
        )
    finally:
        await conn.close()


async def reads_while(
    base: str, app: dict[str, Any], work: Awaitable[float], concurrency: int = 4
) -> tuple[float, list[float]]:
    """Inbox reads for exactly as long as `work` runs: (its result, read latencies in ms)."""
    latencies: list[float] = []
    stop = asyncio.Event()
    headers = {"X-ENGAGESPOT-API-KEY": app["apiKey"], "X-ENGAGESPOT-USER-ID": "reader"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def lane() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                r = await client.get("/v3/notifications", headers=headers)
                assert r.status_code == 200, r.text
                latencies.append((time.perf_counter() - t) * 1000)

        lanes = [asyncio.create_task(lane()) for _ in range(concurrency)]
        try:
            result = await work
        finally:
            stop.set()
            await asyncio.gather(*lanes)
    return result, latencies


async def push_main(args: argparse.Namespace) -> dict[str, Any]:
    server = asyncpg_url(args.database_url)
    name = args.database_name + "_push"
    database = await recreate(server, name)
    peers = PushPeers().start()
    receiver = Receiver()
    env = {
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_SECRET_KEY": secrets.token_urlsafe(40),
        "SSL_CERT_FILE": str(peers.ca_file),
        "HERALD_FCM_BASE_URL": peers.url,
        "HERALD_APNS_BASE_URL": peers.url,
        "HERALD_EXPO_BASE_URL": peers.url,
        # Receipts are fetched after the run, not during it.
        "HERALD_EXPO_RECEIPT_DELAY": "3600",
    }
    n = args.deliveries
    out: dict[str, Any] = {
        "load_start": loadavg(),
        **{k: {} for k in ("rates", "busy_rates", "p99", "p50", "reads", "cpu")},
    }
    try:
        with herald(database, admin_token=ADMIN, extra_env=env) as (base, proc):
            headers = {"Authorization": f"Bearer {ADMIN}"}
            apps: dict[str, dict[str, Any]] = {}
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                for provider, channel, config in (
                    (
                        "fcm",
                        "mobilePush",
                        {"SERVICE_ACCOUNT": service_account(f"{peers.url}/token")},
                    ),
                    ("apns", "mobilePush", apns_config()),
                    ("expo", "mobilePush", {}),
                    ("default_webhook", "webhook", {"SIGNING_KEY": "bench-key"}),
                ):
                    app = await app_with(client, ["inApp", channel])
                    r = await client.post(
                        f"/admin/apps/{app['id']}/channels/{channel}/providers",
                        json={"provider": provider, "config": config},
                        headers=headers,
                    )
                    r.raise_for_status()
                    apps[provider] = app
                reader_app = apps["fcm"]
                r = await client.post(
                    "/v3/notifications",
                    json={"notification": {"title": "seed"}, "sendTo": {"recipients": ["reader"]}},
                    headers=backend(reader_app),
                )
                r.raise_for_status()
            dsn = plain(database)
            processes = Processes(server_pid=proc.pid, postmaster_pid=await postmaster_pid(dsn))
            for provider in ("fcm", "apns", "expo"):
                await seed_push_users(dsn, int(apps[provider]["id"]), 2 * n, provider)
            await seed_users(
                dsn,
                int(apps["default_webhook"]["id"]),
                2 * n,
                0,
                f"http://127.0.0.1:{receiver.port}/hook",
            )
            progress("inbox reads, idle")
            idle = await inbox_reads(base, reader_app, args.read_seconds, 4)
            out["p50"]["idle"], out["p99"]["idle"] = pct(idle, 0.5), pct(idle, 0.99)
            out["reads"]["idle"] = len(idle)
            counters: dict[str, Callable[[], int]] = {
                "fcm": lambda: peers.counts["fcm"],
                "apns": lambda: peers.counts["apns"],
                "expo": lambda: peers.counts["expo"],
                "default_webhook": lambda: receiver.count,
            }
            for provider in ("default_webhook", "fcm", "apns", "expo"):
                channel = "webhook" if provider == "default_webhook" else "mobilePush"

                def run(provider: str = provider, channel: str = channel) -> Awaitable[float]:
                    return deliver(
                        base,
                        dsn,
                        apps[provider],
                        channel=channel,
                        n=n,
                        per_send=min(100, n),
                        done=counters[provider],
                    )

                progress(f"{n} deliveries through {provider}, alone")
                before = processes.cpu()
                seconds = await run()
                spent = processes.cpu() - before
                # CPU ms per delivery: Herald (the API taking the sends, and the worker),
                # PostgreSQL, this process (the peers and the sends).
                out["cpu"][provider] = tuple(
                    None if x is None else x * 1000 / n
                    for x in (spent.server, spent.postgres, spent.client)
                )
                out["rates"][provider] = n / seconds
                progress(f"{n} more through {provider}, with inbox reads")
                seconds, busy = await reads_while(base, reader_app, run())
                out["busy_rates"][provider] = n / seconds
                out["p50"][provider], out["p99"][provider] = pct(busy, 0.5), pct(busy, 0.99)
                out["reads"][provider] = len(busy)
            out["grants"] = peers.counts["grants"]
    finally:
        peers.stop()
        receiver.stop()
        await drop(server, name)
    out["load_end"] = loadavg()
    return out


def render_push(args: argparse.Namespace, out: dict[str, Any]) -> str:
    n = args.deliveries
    idle99 = out["p99"]["idle"]
    base_rate = out["rates"]["default_webhook"]
    labels = {
        "default_webhook": "signed webhooks (baseline, HTTP/1.1, no TLS)",
        "fcm": "FCM v1 (HTTP/1.1 + TLS, one request per token)",
        "apns": "APNs (HTTP/2 + TLS, ES256 provider token)",
        "expo": "Expo (TLS, batches of 100)",
    }
    lines = [
        f"## Push: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        _machine_line(out),
        _command_line(),
        "- Peers in the bench process: one hypercorn server over TLS (trustme CA through "
        "SSL_CERT_FILE) for the token endpoint, FCM, APNs (HTTP/2) and Expo, answering "
        "success; a uvicorn receiver for the webhooks; one `herald serve` with its in-process "
        f"worker (16 delivery slots); {n} deliveries per provider alone, then {n} more with "
        "4 inbox readers; sends of 100 users with one token each",
        f"- FCM access-token grants during the run: {out['grants']}",
        "",
        "| what | deliveries/s alone | vs webhooks | CPU ms per delivery: Herald / "
        "PostgreSQL / bench+peers | deliveries/s with 4 inbox readers | inbox page p50 / p99 "
        "meanwhile | p99 vs idle |",
        "|---|---|---|---|---|---|---|",
        f"| inbox page, idle (4 readers) | | | | | {out['p50']['idle']:.1f} / {idle99:.1f} ms "
        f"({out['reads']['idle']} reads) | |",
    ]
    for provider in ("default_webhook", "fcm", "apns", "expo"):
        rate = out["rates"][provider]
        cpu = " / ".join("?" if x is None else f"{x:.1f}" for x in out["cpu"][provider])
        lines.append(
            f"| {labels[provider]} | **{rate:.0f}/s** | {rate / base_rate:.2f}x | {cpu} | "
            f"{out['busy_rates'][provider]:.0f}/s | "
            f"{out['p50'][provider]:.1f} / {out['p99'][provider]:.1f} ms "
            f"({out['reads'][provider]} reads) | {out['p99'][provider] / idle99:.2f}x |"
        )
    lines.append("")
    return "\n".join(lines)


def push_mode(args: argparse.Namespace) -> None:
    if args.quick:
        args.deliveries, args.read_seconds = 50, 1
    out = asyncio.run(push_main(args))
    text = render_push(args, out)
    print(text)
    rates = " ".join(f"{k}_per_s={v:.0f}" for k, v in out["rates"].items())
    print(f"RESULT {rates} inbox_p99_idle_ms={out['p99']['idle']:.1f} grants={out['grants']}")
    if args.results or not args.quick:
        with (args.results or RESULTS).open("a") as fh:
            fh.write("\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--sends", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--read-seconds", type=float, default=8)
    parser.add_argument("--database-name", default="herald_bench_channels")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sms", action="store_true", help="measure SMS (see sms_main_async)")
    parser.add_argument("--push", action="store_true", help="mobile push rates (see push_main)")
    parser.add_argument(
        "--results",
        type=Path,
        help="append the section here (default bench/RESULTS.md, not for --quick)",
    )
    args = parser.parse_args()
    if args.push:
        push_mode(args)
        return
    if args.quick:
        args.deliveries, args.sends, args.rounds, args.read_seconds = 50, 50, 1, 1
    if args.sms:
        sms_out = asyncio.run(sms_main_async(args))
        text = render_sms(args, sms_out)
        print(text)
        print(
            f"RESULT sms_per_s={sms_out['sms_per_s']:.0f} "
            f"webhooks_per_s={sms_out['webhooks_per_s']:.0f} "
            f"inbox_p99_idle_ms={sms_out['idle_p99']:.1f} "
            f"inbox_p99_sms_ms={sms_out['sms_p99']:.1f}"
        )
        if args.results or not args.quick:
            with (args.results or RESULTS).open("a") as fh:
                fh.write("\n" + text)
        return
    out = asyncio.run(main_async(args))
    text = render(args, out)
    print(text)
    print(
        f"RESULT emails_per_s={out['emails_per_s']:.0f} webhooks_per_s={out['webhooks_per_s']:.0f} "
        f"pushes_per_s={out['pushes_per_s']:.0f} inbox_p99_push_ms={out['push_p99']:.1f} "
        f"inbox_p99_idle_ms={out['idle_p99']:.1f} inbox_p99_busy_ms={out['busy_p99']:.1f} "
        f"sends_before={out['sends']['before']:.0f} sends_after={out['sends']['after']:.0f}"
    )
    if args.results or not args.quick:
        with (args.results or RESULTS).open("a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
