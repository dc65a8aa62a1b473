"""Outbound HTTP for deliveries: no private targets, no redirects, bounded time and size.

Addresses are checked after DNS resolution, on every new connection, and the connection goes
to the address that was checked (so a second, different DNS answer cannot slip through).
`HERALD_ALLOW_PRIVATE_TARGETS=true` lifts the check (tests, intranets). TLS verifies against
the system store; OpenSSL honours `SSL_CERT_FILE` for a private CA."""

import asyncio
import base64
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx

MAX_RESPONSE_BYTES = 65_536
CONNECT_TIMEOUT = 5.0


class BlockedAddress(Exception):
    """The target resolves to an address Herald does not send to."""


def allowed_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Not global covers loopback, RFC 1918, link-local (169.254.169.254 metadata), CGNAT,
    # unique-local IPv6, documentation and reserved ranges.
    return ip.is_global and not ip.is_multicast


def tls_context(*, http2: bool = False) -> ssl.SSLContext:
    """The system trust store (or SSL_CERT_FILE), loaded once per process and CA file: loading
    it costs more CPU than a whole SMTP conversation on loopback. HTTP/2 clients get a context
    of their own: httpcore sets the ALPN protocols on the context it is given."""
    return _context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), http2)


@lru_cache(maxsize=8)
def _context_for(cert_file: str | None, cert_dir: str | None, http2: bool) -> ssl.SSLContext:
    return ssl.create_default_context()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = host
        if not self._allow_private:
            address = await checked_address(host, port)
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not delivery targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def checked_address(host: str, port: int) -> str:
    """Resolve `host`; return an address to connect to, or raise BlockedAddress."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        found = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not found:
        raise httpcore.ConnectError(f"cannot resolve {host}")
    refused = [ip for ip in found if not allowed_ip(ip)]
    if refused:
        raise BlockedAddress(
            f"{host} resolves to {refused[0]}, a private, loopback or link-local address "
            "(set HERALD_ALLOW_PRIVATE_TARGETS=true to allow it)"
        )
    return str(found[0])


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: str


class Client:
    """One pooled client per worker process (and its HTTP/2 sibling, made when first used)."""

    def __init__(self, *, allow_private: bool, timeout: float, http2: bool = False) -> None:
        context = tls_context(http2=http2)
        transport = httpx.AsyncHTTPTransport(verify=context)
        # httpx takes no network backend; the pool it builds is swapped for one that has ours.
        # The HTTP/2 pool speaks only HTTP/2 (APNs), multiplexing requests on each connection;
        # every new connection still goes through the address check.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=200,
            max_keepalive_connections=50,
            keepalive_expiry=30,
            http1=not http2,
            http2=http2,
            network_backend=GuardedBackend(allow_private=allow_private),
        )
        self.allow_private = allow_private
        self.timeout = timeout
        self._http2: Client | None = self if http2 else None
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            headers={"User-Agent": "Herald"},
        )

    async def post(
        self,
        url: str,
        *,
        content: bytes | None = None,
        data: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Answer:
        """POST and read at most MAX_RESPONSE_BYTES of the answer, all within the timeout."""
        async with asyncio.timeout(self.timeout):
            sent_headers = {**(headers or {}), **(_basic(auth) if auth else {})}
            request = self._client.build_request(
                "POST", url, content=content, data=data, files=files, headers=sent_headers
            )
            response = await self._client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
        return Answer(
            response.status_code,
            response.headers,
            bytes(body[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace"),
        )

    def http2(self) -> "Client":
        """A client with the same guard and limits that speaks HTTP/2 only."""
        if self._http2 is None:
            self._http2 = Client(allow_private=self.allow_private, timeout=self.timeout, http2=True)
        return self._http2

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._http2 is not None and self._http2 is not self:
            await self._http2.aclose()


def _basic(auth: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
