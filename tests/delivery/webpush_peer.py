"""A web-push service on loopback over TLS (uvicorn, a trustme certificate), and browsers.

A `Browser` is what a user agent holds for one subscription: a P-256 key pair and a 16-byte
auth secret, made here as a browser makes them. The `PushService` does what a real one does
before it accepts a message: it checks the VAPID `Authorization` (ES256 with the key in
`k=`, `aud` its own origin, `exp` at most 24 h ahead, a mailto:/https: `sub`), refuses a body
over 4096 bytes (413) and, standing in for the browser, decrypts it twice: with `http_ece`
and with `rfc8291_decrypt` below, written from the RFC on `cryptography` alone, so a bug in
one library cannot cancel out in the other."""

import asyncio
import base64
import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import jwt
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.asgi_thread import AsgiThread


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass
class Browser:
    """One push subscription: the browser's key pair and auth secret, and its endpoint."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        """PushSubscription.toJSON(), as the page posts it."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(_point(self.key.public_key())), "auth": b64url(self.auth)},
        }


def rfc8291_decrypt(body: bytes, key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """Decrypt a one-record aes128gcm push message following RFC 8291 §3.4 and RFC 8188 §2."""
    # RFC 8188 §2.1: salt(16) ‖ rs(4) ‖ idlen(1) ‖ keyid(idlen) ‖ records
    salt, rs, idlen = body[:16], struct.unpack("!I", body[16:20])[0], body[20]
    sender_point = body[21 : 21 + idlen]
    records = body[21 + idlen :]
    assert idlen == 65, "keyid must be the application server's P-256 public key"
    assert len(records) <= rs, "one record expected"
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_point)
    ecdh_secret = key.exchange(ec.ECDH(), sender)
    # RFC 8291 §3.3/3.4: IKM = HKDF(salt=auth, ikm=ecdh, info="WebPush: info\0"‖ua‖as, 32)
    key_info = b"WebPush: info\x00" + _point(key.public_key()) + sender_point
    ikm = HKDF(hashes.SHA256(), 32, salt=auth, info=key_info).derive(ecdh_secret)
    # RFC 8188 §2.2/2.3: CEK and NONCE from the record salt.
    cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
    padded = AESGCM(cek).decrypt(nonce, records, None)  # counter 0: nonce XOR 0
    # RFC 8188 §2: plaintext ‖ delimiter (2 for the last record) ‖ zero padding.
    stripped = padded.rstrip(b"\x00")
    assert stripped[-1:] == b"\x02", "the last record must end with delimiter 0x02"
    return stripped[:-1]


@dataclass
class Push:
    """One message as the push service received and the browser decrypted it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    claims: dict[str, Any]
    k: str
    message: dict[str, Any]


@dataclass
class PushService:
    """Accepts messages at /push/<name>; `scripts[name]` answers (status, headers, body) in
    turn, then 201 once the script runs out; `gone` names answer 410 forever; `hold[name]`
    delays the next answer."""

    ca: trustme.CA
    directory: Path
    browsers: dict[str, Browser] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    # Every answer other than 201: (name, status, reason, monotonic time).
    refused: list[tuple[str, int, str, float]] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    # name -> seconds the next message to it waits before it is answered (once).
    hold: dict[str, float] = field(default_factory=dict)
    port: int = 0

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def browser(self, name: str) -> Browser:
        """A new subscription at this service (the browser's side made here)."""
        found = Browser(f"{self.origin}/push/{name}")
        self.browsers[name] = found
        return found

    def to(self, name: str) -> list[Push]:
        return [p for p in self.pushes if p.path == f"/push/{name}"]

    def hits(self, name: str) -> int:
        """Every request for `name`, accepted or not."""
        return len(self.to(name)) + sum(1 for r in self.refused if r[0] == name)

    def _refuse(self, name: str, status: int, reason: str) -> Response:
        self.refused.append((name, status, reason, time.monotonic()))
        return Response(json.dumps({"reason": reason}), status_code=status)

    def _vapid(self, header: str) -> tuple[dict[str, Any], str]:
        scheme, _, params = header.partition(" ")
        assert scheme.lower() == "vapid", header
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        token, k = fields["t"], fields["k"]
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(k))
        claims: dict[str, Any] = jwt.decode(
            token,
            public,
            algorithms=["ES256"],
            audience=self.origin,
            options={"require": ["aud", "exp", "sub"]},
        )
        assert claims["exp"] <= time.time() + 24 * 3600, "exp more than 24 h ahead"
        assert str(claims["sub"]).startswith(("mailto:", "https:")), claims["sub"]
        return claims, k

    async def _handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            claims, k = self._vapid(headers.get("authorization", ""))
        except (AssertionError, KeyError, ValueError, jwt.PyJWTError) as exc:
            return self._refuse(name, 401, f"BadJwtToken: {exc!r}")
        if len(body) > 4096:
            return self._refuse(name, 413, "PayloadTooLarge")
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return self._refuse(name, 400, "need Content-Encoding: aes128gcm and TTL")
        if name in self.hold:
            await asyncio.sleep(self.hold.pop(name))
        if name in self.gone:
            return self._refuse(name, 410, "Gone")
        script = self.scripts.get(name)
        if script:
            status, extra, text = script.pop(0)
            self.refused.append((name, status, text, time.monotonic()))
            return Response(text, status_code=status, headers=extra)
        browser = self.browsers.get(name)
        if browser is None:
            return self._refuse(name, 404, "NotFound")
        mine = rfc8291_decrypt(body, browser.key, browser.auth)
        theirs = http_ece.decrypt(
            body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
        )
        assert mine == theirs, "the two decryptors disagree"
        self.pushes.append(
            Push(request.url.path, headers, body, time.monotonic(), claims, k, json.loads(mine))
        )
        number = len(self.pushes)
        return Response(status_code=201, headers={"Location": f"{self.origin}/m/{number}"})

    def start(self) -> "PushService":
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        certfile, keyfile = self.directory / "push-cert.pem", self.directory / "push-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        app = Starlette(routes=[Route("/push/{name}", self._handle, methods=["POST"])])
        served = AsgiThread(app, what="push service", certfile=certfile, keyfile=keyfile)
        self._served = served.start()
        self.port = served.port
        return self

    def stop(self) -> None:
        self._served.stop()
