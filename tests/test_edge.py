"""The edge middleware: size limits, path clean-up, CORS, and one access-log line per request."""

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.logs import JsonFormatter
from tests.factories import Creds, send_body
from tests.factories import error_message as assert_error

SDK_HEADERS = [
    "X-ENGAGESPOT-API-KEY",
    "X-ENGAGESPOT-API-SECRET",
    "X-ENGAGESPOT-USER-ID",
    "X-ENGAGESPOT-USER-SIGNATURE",
    "X-ENGAGESPOT-DEVICE-ID",
    "Authorization",
    "Content-Type",
    "Cache-Control",
    "Pragma",
    "Expires",
]


def padded_send(size: int) -> bytes:
    """A valid send body of exactly `size` bytes."""
    body = send_body("alice", data={"pad": ""})
    bare = len(json.dumps(body).encode())
    body = send_body("alice", data={"pad": "x" * (size - bare)})
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


# --- size limits ------------------------------------------------------------------------------


async def test_body_at_the_limit_passes_and_one_byte_more_is_413(
    client: httpx.AsyncClient, creds: Creds, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    assert limit == 1_048_576
    headers = {**creds.backend(), "Content-Type": "application/json"}
    r = await client.post("/v3/notifications", content=padded_send(limit), headers=headers)
    assert r.status_code == 202, r.text[:300]
    r = await client.post("/v3/notifications", content=padded_send(limit + 1), headers=headers)
    assert_error(r, 413)
    assert r.headers["content-type"] == "application/json"
    page = await client.get("/v3/notifications", headers=creds.user("alice"))
    assert page.json()["pagination"]["totalCount"] == 1


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, creds: Creds, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit must hold while the body arrives.
        for _ in range(settings.max_body_bytes // 65_536 + 2):
            yield b" " * 65_536

    headers = {**creds.backend(), "Content-Type": "application/json"}
    r = await client.post("/v3/notifications", content=chunks(), headers=headers)
    assert "content-length" not in r.request.headers
    assert_error(r, 413)


async def test_declared_length_over_the_limit_is_413_before_reading(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    headers = {**creds.backend(), "Content-Length": "99999999999"}
    r = await client.post("/v3/notifications/markAllNotificationsAsRead", headers=headers)
    assert_error(r, 413)


async def test_headers_over_the_limits_are_431(
    client: httpx.AsyncClient, creds: Creds, settings: Settings
) -> None:
    assert settings.max_header_bytes == 16_384
    assert settings.max_header_count == 100
    ok = await client.get(
        "/v3/notifications", headers={**creds.user("alice"), "X-Pad": "p" * 15_000}
    )
    assert ok.status_code == 200, ok.text
    r = await client.get(
        "/v3/notifications", headers={**creds.user("alice"), "X-Pad": "p" * 16_384}
    )
    assert_error(r, 431)
    many = {f"X-Pad-{i}": "p" * 100 for i in range(150)}
    assert_error(await client.get("/v3/notifications", headers={**creds.user("a"), **many}), 431)
    # Many small headers: within the byte limit, over the count.
    count = {f"X-{i}": "1" for i in range(101)}
    r = await client.get("/v3/notifications", headers={**creds.user("alice"), **count})
    assert_error(r, 431)
    assert "100 request headers" in r.json()["message"]
    fewer = dict(list(count.items())[:80])
    r = await client.get("/v3/notifications", headers={**creds.user("alice"), **fewer})
    assert r.status_code == 200, r.text


# --- paths ------------------------------------------------------------------------------------


async def test_double_slashes_and_trailing_slashes(
    client: httpx.AsyncClient, admin: dict[str, str], creds: Creds
) -> None:
    r = await client.post(
        "http://herald.test//v3//notifications", json=send_body("alice"), headers=creds.backend()
    )
    assert r.status_code == 202, r.text
    for url in (
        "http://herald.test//v3//notifications",
        "http://herald.test/v3/notifications/",
        "http://herald.test//v3/notifications//",
        "http://herald.test/v3///notifications",
    ):
        r = await client.get(url, headers=creds.user("alice"))
        assert r.status_code == 200, (url, r.text)
        assert r.json()["pagination"]["totalCount"] == 1
    r = await client.post("/admin/apps/", json={"name": "slash"}, headers=admin)
    assert r.status_code == 201, r.text
    assert_error(await client.get("/v3/nowhere", headers=creds.user("alice")), 404)


# --- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_preflight_allows_the_sdk_headers(client: httpx.AsyncClient, method: str) -> None:
    r = await client.options(
        "/v3/notifications",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ",".join(h.lower() for h in SDK_HEADERS),
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example.com")
    assert method in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {h.lower() for h in SDK_HEADERS} <= allowed


@pytest.mark.parametrize("header", SDK_HEADERS)
async def test_preflight_for_each_header(client: httpx.AsyncClient, header: str) -> None:
    r = await client.options(
        "/v3/notifications/123/click",
        headers={
            "Origin": "https://other.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": header,
        },
    )
    assert r.status_code == 200, r.text


async def test_preflight_refuses_an_unknown_header(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/v3/notifications",
        headers={
            "Origin": "https://other.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Not-Allowed",
        },
    )
    assert r.status_code == 400


async def test_cross_origin_responses_carry_cors_headers(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    headers = {**creds.user("alice"), "Origin": "https://app.example.com"}
    r = await client.get("/v3/notifications", headers=headers)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example.com")
    # Errors too, or the browser hides them from the SDK.
    r = await client.get("/v3/notifications", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 401
    assert "access-control-allow-origin" in r.headers
    assert "x-request-id" in {
        h.lower() for h in r.headers["access-control-expose-headers"].split(",")
    }


# --- access log -------------------------------------------------------------------------------


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The access lines as `herald serve` writes them (JSON)."""
    lines: list[dict[str, object]] = []
    for record in caplog.records:
        if record.name == "herald.access":
            line = json.loads(JsonFormatter().format(record))
            assert isinstance(line, dict)
            lines.append(line)
    return lines


async def test_one_access_line_per_request(
    client: httpx.AsyncClient, creds: Creds, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="herald.access")
    big = b"x" * 2_000_000
    requests: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
        ("GET", "/v3/notifications", creds.user("alice"), None, 200),
        ("POST", "/v3/notifications", creds.backend(), b"{", 400),
        ("GET", "/v3/notifications", {}, None, 401),
        ("GET", "/v3/nowhere", {}, None, 404),
        ("POST", "/v3/notifications", creds.backend(), big, 413),
        ("GET", "//v3//notifications/", creds.user("alice"), None, 200),
    ]
    for method, path, headers, content, status in requests:
        caplog.clear()
        url = f"http://herald.test{path}"
        r = await client.request(method, url, headers=headers, content=content)
        assert r.status_code == status, r.text
        lines = access_lines(caplog)
        assert len(lines) == 1, lines
        line = lines[0]
        assert line["method"] == method
        assert line["path"] == "/v3/" + path.strip("/").split("/")[-1]
        assert line["status"] == status
        assert isinstance(line["ms"], int | float)
        assert line["ms"] >= 0
        assert line["xRequestId"] == r.headers["x-request-id"]


async def test_request_id_is_kept_or_made(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="herald.access")
    r = await client.get("/health", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert access_lines(caplog)[-1]["xRequestId"] == "trace-123"
    made = (await client.get("/health")).headers["x-request-id"]
    again = (await client.get("/health")).headers["x-request-id"]
    assert made
    assert made != again
    # An oversized id is replaced rather than echoed into logs.
    r = await client.get("/health", headers={"X-Request-ID": "r" * 500})
    assert r.headers["x-request-id"] != "r" * 500
