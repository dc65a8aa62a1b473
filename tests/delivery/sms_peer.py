"""SMS APIs on loopback over TLS (a trustme certificate): Twilio-, Plivo- and Textlocal-shaped.

Each checks what the real API checks first (HTTP Basic or the API key, the form or JSON fields)
and records every message it accepted. Twilio's answers can be scripted per `To` number
(a Twilio error code, a 5xx, or holding the answer past the client's timeout), and the peer
sends Twilio's status callbacks to the `StatusCallback` URL it was given, signed with the
`twilio` package's own `RequestValidator` (not Herald's code).

Runs in a thread with its own event loop, as a remote server would."""

import asyncio
import base64
import json
import secrets
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bench.asgi_thread import AsgiThread
from tests.delivery.peers import free_port

SID, TOKEN, FROM = "AC" + "1" * 32, "twilio-auth-token-0123456789", "+15005550006"
PLIVO_ID, PLIVO_TOKEN = "MAPLIVOAUTHID0000001", "plivo-token-0123456789"
TEXTLOCAL_KEY = "textlocal-key-0123456789"


@dataclass
class Message:
    """A message the peer accepted (answered 2xx) or refused, with what it was sent."""

    provider: str
    fields: dict[str, str]
    sid: str | None
    status: int
    at: float


@dataclass
class Script:
    """How Twilio answers one `To` number: each send takes the next answer; then 201."""

    answers: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    # Record the message, then answer only once this is set (past the client's timeout).
    hold: threading.Event | None = None


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def twilio_error(code: int, message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class SmsPeer:
    def __init__(self, ca: trustme.CA, *, port: int | None = None) -> None:
        self.ca = ca
        self.port = port or free_port()
        self.messages: list[Message] = []
        self.scripts: dict[str, Script] = {}
        self.callback_answers: list[int] = []
        self.token = TOKEN
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- Twilio --------------------------------------------------------------------------

    async def _twilio(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if _basic(request) != (request.path_params["sid"], self.token) or (
            request.path_params["sid"] != SID
        ):
            status, body = twilio_error(20003, "Authenticate", 401)
            return JSONResponse(body, status)
        to = form.get("To", "")
        whatsapp = to.startswith("whatsapp:")
        missing = [k for k in ("To",) if not form.get(k)]
        if not form.get("From") and not form.get("MessagingServiceSid"):
            missing.append("From")
        if not form.get("Body") and not form.get("ContentSid"):
            missing.append("Body")
        if whatsapp and not form.get("From", "whatsapp:").startswith("whatsapp:"):
            missing.append("From (whatsapp:)")
        if missing:
            status, body = twilio_error(21604, f"missing {', '.join(missing)}")
            return JSONResponse(body, status)
        script = self.scripts.get(to.removeprefix("whatsapp:"))
        if script and script.hold is not None:
            self.messages.append(Message("twilio", form, None, 0, time.monotonic()))
            await asyncio.get_running_loop().run_in_executor(None, script.hold.wait)
            return JSONResponse({"sid": None}, 201)
        if script and script.answers:
            status, body, headers = script.answers.pop(0)
            self.messages.append(Message("twilio", form, None, status, time.monotonic()))
            return JSONResponse(body, status, headers=headers)
        sid = "SM" + secrets.token_hex(16)
        self.messages.append(Message("twilio", form, sid, 201, time.monotonic()))
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": SID,
                "to": to,
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "error_code": None,
                "error_message": None,
            },
            201,
        )

    def script(self, number: str, *answers: tuple[int, dict[str, Any]]) -> None:
        self.scripts[number] = Script([(s, b, {}) for s, b in answers])

    def hold(self, number: str) -> threading.Event:
        event = threading.Event()
        self.scripts[number] = Script(hold=event)
        return event

    def twilio_to(self, number: str) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.provider == "twilio" and m.fields.get("To", "").removeprefix("whatsapp:") == number
        ]

    # -- status callbacks, signed by twilio's RequestValidator ---------------------------

    def callback(
        self, message: Message, statuses: Sequence[str], **extra: str
    ) -> "Future[list[int]]":
        """POST Twilio's status callbacks for `message`, one per status, in order, to the
        StatusCallback URL it carried; resolves to Herald's answers."""
        assert self._loop is not None
        url = message.fields["StatusCallback"]
        fields = message.fields

        async def post() -> list[int]:
            answers = []
            context = ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode())
            async with httpx.AsyncClient(verify=context, timeout=10) as client:
                for status in statuses:
                    params = {
                        "AccountSid": SID,
                        "ApiVersion": "2010-04-01",
                        "MessageSid": message.sid or "",
                        "SmsSid": message.sid or "",
                        "MessageStatus": status,
                        "SmsStatus": status,
                        "From": fields.get("From", ""),
                        "To": fields.get("To", ""),
                        **extra,
                    }
                    signature = RequestValidator(self.token).compute_signature(url, params)
                    response = await client.post(
                        url, data=params, headers={"X-Twilio-Signature": signature}
                    )
                    answers.append(response.status_code)
            self.callback_answers += answers
            return answers

        return asyncio.run_coroutine_threadsafe(post(), self._loop)

    # -- Plivo and Textlocal -------------------------------------------------------------

    async def _plivo(self, request: Request) -> Response:
        if _basic(request) != (PLIVO_ID, PLIVO_TOKEN) or request.path_params["id"] != PLIVO_ID:
            return JSONResponse({"api_id": "x", "error": "authentication failed"}, 401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"api_id": "x", "error": "invalid JSON"}, 400)
        if not all(isinstance(body.get(k), str) and body[k] for k in ("src", "dst", "text")):
            return JSONResponse({"api_id": "x", "error": "src, dst and text are required"}, 400)
        fields = {k: str(v) for k, v in body.items()}
        if body["dst"] in self.scripts and self.scripts[body["dst"]].answers:
            status, answer, _ = self.scripts[body["dst"]].answers.pop(0)
            self.messages.append(Message("plivo", fields, None, status, time.monotonic()))
            return JSONResponse(answer, status)
        uuid = secrets.token_hex(16)
        self.messages.append(Message("plivo", fields, uuid, 202, time.monotonic()))
        return JSONResponse(
            {"api_id": "a", "message": "message(s) queued", "message_uuid": [uuid]}, 202
        )

    async def _textlocal(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if form.get("apikey") != TEXTLOCAL_KEY:
            return JSONResponse(
                {"errors": [{"code": 3, "message": "Invalid login details"}], "status": "failure"}
            )
        if not form.get("numbers", "").isdigit() or not form.get("message"):
            return JSONResponse(
                {"errors": [{"code": 4, "message": "No recipients specified"}], "status": "failure"}
            )
        mid = str(secrets.randbelow(10**10))
        self.messages.append(Message("textlocal", form, mid, 200, time.monotonic()))
        return JSONResponse(
            {
                "balance": 1000,
                "batch_id": 1,
                "num_messages": 1,
                "messages": [{"id": mid, "recipient": int(form["numbers"])}],
                "status": "success",
            }
        )

    # -- lifecycle -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> "SmsPeer":
        app = Starlette(
            routes=[
                Route(
                    "/twilio/2010-04-01/Accounts/{sid}/Messages.json",
                    self._twilio,
                    methods=["POST"],
                ),
                Route("/plivo/v1/Account/{id}/Message/", self._plivo, methods=["POST"]),
                Route("/textlocal/send/", self._textlocal, methods=["POST"]),
            ]
        )
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._served = AsgiThread(app, what="SMS peer", port=self.port, ssl_context=context)
        self._loop = self._served.start().loop
        return self

    def stop(self) -> None:
        for script in self.scripts.values():
            if script.hold is not None:
                script.hold.set()
        self._served.stop()
