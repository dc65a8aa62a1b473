"""Counting push peers for bench.channels --push: Google's token endpoint and FCM's
`messages:send`, APNs (HTTP/2 only) and Expo's `push/send`, one hypercorn server over TLS
(a trustme CA the Herald process trusts through SSL_CERT_FILE) in a thread of this process.
They answer success and count messages; the protocol checks live in the tests' peers."""

import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.asgi_thread import HypercornThread


class PushPeers:
    def __init__(self) -> None:
        self.counts = {"fcm": 0, "apns": 0, "expo": 0, "grants": 0}
        self.folder = Path(tempfile.mkdtemp(prefix="herald-push-peers-"))
        ca = trustme.CA()
        self.ca_file = self.folder / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(self.folder / "cert.pem"))
        cert.private_key_pem.write_to_path(str(self.folder / "key.pem"))
        self.app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{p}/messages:send", self._fcm, methods=["POST"]),
                Route("/3/device/{token}", self._apns, methods=["POST"]),
                Route("/--/api/v2/push/send", self._expo, methods=["POST"]),
                Route("/--/api/v2/push/getReceipts", self._receipts, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        await request.body()
        self.counts["grants"] += 1
        token = "ya29." + secrets.token_urlsafe(16)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _fcm(self, request: Request) -> Response:
        await request.body()
        self.counts["fcm"] += 1
        return JSONResponse({"name": f"projects/bench/messages/{self.counts['fcm']}"})

    async def _apns(self, request: Request) -> Response:
        await request.body()
        if request.scope["http_version"] != "2":
            return Response(status_code=505)
        self.counts["apns"] += 1
        return Response(status_code=200, headers={"apns-id": request.headers["apns-id"]})

    async def _expo(self, request: Request) -> Response:
        messages = json.loads(await request.body())
        self.counts["expo"] += len(messages)
        return JSONResponse(
            {"data": [{"status": "ok", "id": secrets.token_hex(8)} for _ in messages]}
        )

    async def _receipts(self, request: Request) -> Response:
        ids = json.loads(await request.body())["ids"]
        return JSONResponse({"data": {i: {"status": "ok"} for i in ids}})

    def start(self) -> "PushPeers":
        self._served = HypercornThread(
            self.app,
            certfile=self.folder / "cert.pem",
            keyfile=self.folder / "key.pem",
            backlog=1024,
        ).start()
        self.port = self._served.port
        return self

    @property
    def url(self) -> str:
        return self._served.url()

    def stop(self) -> None:
        self._served.stop()


def service_account(token_uri: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "bench",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "bench@bench.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }


def apns_config() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"TEAM_ID": "BENCHTEAM1", "KEY_ID": "BENCHKEY01", "PRIVATE_KEY": pem, "BUNDLE_ID": "b.b"}
