"""uvicorn's httptools protocol, bounded: what one connection may make Herald buffer, and how
long it may take.

httptools (llhttp) has no limit of its own on a request's head and gathers a header's value by
concatenation, so a 100 MB header cost seconds of CPU and hundreds of MB before any check ran.
This protocol counts the head's bytes as they arrive and feeds the parser no more than the
limit, counts headers, and closes connections that are slow to send their request or that
arrive past the connection cap. Bodies stay bounded by uvicorn's flow control (it stops reading
at 64 KiB until the app reads) and by the app's own body limit (app/edge.py)."""

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.errors import error_body

log = logging.getLogger("herald.server")
access_log = logging.getLogger("herald.access")

# After a refusal the client is often still sending. Reading (and dropping) what it sends for a
# moment lets a client that reads only once it has sent everything see the answer, where
# closing at once would reset the connection under it. Past LINGER_BYTES reading stops: an
# attacker's stream costs the kernel's buffers, not Herald's CPU.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int  # request line and headers, as sent
    max_header_count: int
    max_connections: int  # open HTTP and WebSocket connections
    header_timeout: float  # from connect (or a request's first byte) to the end of its headers
    read_timeout: float  # from the end of the headers to the end of the body
    keepalive_timeout: float  # idle time allowed between two requests

    @property
    def sweep_every(self) -> float:
        """How often deadlines are checked: a tenth of the shortest, within [0.05 s, 1 s]."""
        return min(1.0, max(0.05, min(self.header_timeout, self.read_timeout) / 10))


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the refusal is in `_refusal`."""


class BoundedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits]
    # One periodic sweep per server closes the connections past their deadline: a timer per
    # request would cost more than the rest of this class together.
    _sweeping: ClassVar[asyncio.TimerHandle | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]
        self._head = True  # between the end of one request (or connect) and its next headers
        self._head_bytes = 0
        self._heads_ended = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline = 0.0  # loop time; 0: none
        self._turned_away = False
        self._lingering = False
        self._drained = 0

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # At the cap: close at once, before any state is kept; those being served go on.
            self._turned_away = True
            self.transport = transport
            transport.abort()
            return
        super().connection_made(transport)
        # A connection that never sends a request is closed like a slow one.
        self._deadline = self.loop.time() + self.limits.header_timeout
        cls = type(self)
        if cls._sweeping is None:
            cls._sweeping = self.loop.call_later(
                self.limits.sweep_every, _sweep, cls, self.loop, self.connections
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = 0.0
        if self._turned_away:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.pause_reading()
            return
        if self._turned_away:
            return
        if self._head:
            if not self._deadline:  # the first byte of a request on a kept-alive connection
                self._deadline = self.loop.time() + self.limits.header_timeout
            limit = self.limits.max_header_bytes
            while self._head and len(data) > limit - self._head_bytes:
                # Feed only what fits: if no head ends within it, the head is too large. One
                # that ends may be followed by a pipelined request, counted from here on.
                room = limit - self._head_bytes
                ended = self._heads_ended
                if room > 0 and not self._feed(data[:room]):
                    return
                if self._heads_ended == ended:
                    self._refuse(431, f"Request headers larger than {limit} bytes")
                    return
                data = data[room:]
            if self._head:
                self._head_bytes += len(data)
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """Parse `data`; False when the connection was refused, upgraded or closed."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._deadline = 0.0
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            self._refuse(*(self._refusal or (400, "Invalid HTTP request")))
            return False
        return not self.transport.is_closing()

    # --- parser callbacks --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        # The head's bytes are bounded already, so its header count is checked once, here.
        if len(self.headers) > self.limits.max_header_count:
            self._refusal = (431, f"More than {self.limits.max_header_count} request headers")
            raise _Refused
        self._head = False
        self._heads_ended += 1
        self._deadline = self.loop.time() + self.limits.read_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head = True
        self._head_bytes = 0
        self._deadline = 0.0
        super().on_message_complete()

    # --- deadlines and refusals --------------------------------------------------------------

    def _expired(self) -> None:
        if self.transport.is_closing():
            self._deadline = 0.0
            return
        if self._head and self.cycle is not None and not self.cycle.response_complete:
            # The next (pipelined) request is arriving while this one is answered: its time
            # starts when the answer is done.
            self._deadline = self.loop.time() + self.limits.header_timeout
            return
        self._deadline = 0.0
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` in the error shape and close, draining what the client still sends."""
        self._deadline = 0.0
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is under way on this connection: there is no place for another.
            self.transport.close()
            return
        raw = json.dumps(error_body(message, status), separators=(",", ":")).encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(raw),
                    b"connection: close\r\n\r\n",
                    raw,
                ]
            )
        )
        access_log.info(json.dumps({"status": status, "message": message}, separators=(",", ":")))
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _sweep(
    cls: type[BoundedHttpProtocol], loop: asyncio.AbstractEventLoop, connections: set[Any]
) -> None:
    now = loop.time()
    for connection in list(connections):
        if isinstance(connection, BoundedHttpProtocol) and 0 < connection._deadline <= now:
            connection._expired()
    cls._sweeping = loop.call_later(cls.limits.sweep_every, _sweep, cls, loop, connections)


def bounded(limits: Limits) -> type[BoundedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, with `limits` bound."""
    return type("HeraldHttpProtocol", (BoundedHttpProtocol,), {"limits": limits})
