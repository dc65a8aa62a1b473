"""Real protocol peers on loopback: an SMTP server (aiosmtpd, STARTTLS and AUTH with trustme
certificates) and an HTTP receiver (uvicorn) that records requests and answers from a script.

Each runs in a thread with its own event loop, as a remote server would, so a peer that
holds a reply holds no test coroutine."""

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.asgi_thread import AsgiThread

USER, PASSWORD = "herald", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class Handler:
    """Records what arrives; `busy`/`dead` addresses get 452/550 at RCPT; `hold_rcpt` and
    `hold_data` (threading events) make the server wait before answering."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.busy: set[str] = set()
        self.dead: set[str] = set()
        self.hold_rcpt: dict[str, threading.Event] = {}
        self.hold_data: dict[str, threading.Event] = {}
        self.reached: dict[str, threading.Event] = {}  # set when a hold takes effect
        self.logins: list[str] = []
        # Hold the RCPT of the first address this predicate picks (then it is in `held`).
        self.hold_when: Callable[[str], bool] | None = None
        self.release = threading.Event()
        self.held: list[str] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hold_when is not None and not self.held and self.hold_when(address):
            self.held.append(address)
            self.reached.setdefault(address, threading.Event()).set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        if address in self.hold_rcpt:
            self.reached.setdefault(address, threading.Event()).set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold_rcpt[address].wait)
        if address in self.dead:
            return "550 5.1.1 no such user"
        if address in self.busy:
            return "452 4.2.2 mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw)
        )
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        if first in self.hold_data:
            self.reached.setdefault(first, threading.Event()).set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold_data[first].wait)
        return "250 2.0.0 queued as " + str(len(self.received))

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if r.rcpt_tos[:1] == [address]]


def _authenticator(handler: Handler) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        if ok:
            handler.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)

    return check


class SmtpPeer:
    """A submission server: STARTTLS required before AUTH, AUTH required before MAIL."""

    def __init__(self, ca: trustme.CA, *, port: int | None = None) -> None:
        self.handler = Handler()
        self.port = port or free_port()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            authenticator=_authenticator(self.handler),
            auth_required=True,
        )

    def start(self) -> "SmtpPeer":
        self.controller.start()
        return self

    def stop(self) -> None:
        for event in [
            self.handler.release,
            *self.handler.hold_rcpt.values(),
            *self.handler.hold_data.values(),
        ]:
            event.set()
        self.controller.stop()


@dataclass
class Hit:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HttpPeer:
    """Records every request; answers each path from its script (status, headers, body),
    then 200 once the script runs out."""

    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    ok_body: dict[str, str] = field(default_factory=dict)
    port: int = 0

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        self.hits.append(
            Hit(path, request.url.query, dict(request.headers), body, time.monotonic())
        )
        script = self.scripts.get(path)
        if script:
            status, headers, text = script.pop(0)
            return Response(text, status_code=status, headers=headers)
        return Response(self.ok_body.get(path, '{"ok": true}'), status_code=200)

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def start(self) -> "HttpPeer":
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])
        self._served = AsgiThread(app, what="HTTP peer").start()
        self.port = self._served.port
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._served.stop()


def header_map(hit: Hit) -> dict[str, Any]:
    return {k.lower(): v for k, v in hit.headers.items()}
