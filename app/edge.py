"""ASGI middleware at the edge: path clean-up, size limits, one log line per request."""

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.kit.access import SEND_REQUEST_ID
from app.kit.bodies import json_problem

access_log = logging.getLogger("herald.access")
_SLASHES = re.compile(r"/{2,}")
# What the edge itself answers, before any route runs: the OpenAPI document lists these on
# every operation (app/console/openapi.py). 400: a JSON body PostgreSQL cannot store;
# 413: a body or headers over the limits.
REFUSALS = (400, 413)


class Edge:
    def __init__(self, app: ASGIApp, *, max_body: int, max_headers: int, max_header_count: int):
        self.app = app
        self.max_body = max_body
        self.max_headers = max_headers
        self.max_header_count = max_header_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope = _clean_path(scope)
        request_id = _request_id(scope)
        status = 0
        # Shared with every layer below (Request.state), so a route can leave a note here.
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            # The server refuses these before the app sees them (app/http_protocol.py); this
            # holds for any other ASGI server, and in-process clients.
            headers = scope["headers"]
            if len(headers) > self.max_header_count:
                await _refuse(
                    send_logged, 431, f"More than {self.max_header_count} request headers"
                )
                return
            if sum(len(k) + len(v) for k, v in headers) > self.max_headers:
                await _refuse(
                    send_logged, 431, f"Request headers larger than {self.max_headers} bytes"
                )
                return
            try:
                body = await _read_body(scope, receive, self.max_body)
            except _ClientLeft:
                return  # mid-body: a partial body is never acted on
            if body is None:
                await _refuse(send_logged, 413, f"Request body larger than {self.max_body} bytes")
                return
            problem = None if _is_form(scope) else json_problem(body)
            if problem is not None:
                await _refuse(send_logged, 400, [problem])
                return
            await self.app(scope, _replay(body, receive), send_logged)
        finally:
            fields: dict[str, object] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "xRequestId": request_id,
            }
            sent = state.get(SEND_REQUEST_ID)
            if sent is not None:
                fields["requestId"] = sent
            access_log.info("%s %s %s", scope["method"], scope["path"], status, extra=fields)


def _clean_path(scope: Scope) -> Scope:
    # Engagespot's service worker joins `…/v3/` and `/notifications`: tolerate `//`.
    path: str = scope["path"]
    cleaned = _SLASHES.sub("/", path)
    if len(cleaned) > 1 and cleaned.endswith("/") and not cleaned.startswith("/socket.io"):
        cleaned = cleaned.rstrip("/")
    if cleaned == path:
        return scope
    return {**scope, "path": cleaned, "raw_path": cleaned.encode()}


def _is_form(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind in (b"application/x-www-form-urlencoded", b"multipart/form-data")
    return False


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id" and 0 < len(value) <= 128:
            return str(value.decode("latin-1"))
    return uuid.uuid4().hex


class _ClientLeft(Exception):
    pass


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """Read the whole body (bounded); None when it exceeds the limit.

    Raises _ClientLeft when the connection closed before the body ended."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                if int(value) > limit:
                    return None
            except ValueError:
                return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientLeft
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, message: str | list[str]) -> None:
    payload: dict[str, Any] = error_body(message, status)
    raw = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
