"""GET /metrics: request series by route template, sends, the queue, the pool, the token."""

import uuid

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.main import create_app
from tests.factories import Creds, error_message, send_body
from tests.observability.scrape import Series, scrape, value

TEMPLATE = "/v3/notifications/{notification_id}"


def delta(after: Series, before: Series, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, creds: Creds
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    missing = await client.get("/v3/notifications/987654321", headers=creds.user("ada"))
    error_message(missing, 404)
    # A trailing slash is cleaned up at the edge; the route is still the template.
    missing = await client.get("/v3/notifications/987654322/", headers=creds.user("ada"))
    error_message(missing, 404)
    error_message(await client.get("/no/such/987654323"), 404)
    sent = await client.post("/v3/notifications", json=send_body("ada"), headers=creds.backend())
    assert sent.status_code == 202, sent.text
    refused = await client.post("/v3/notifications", json={}, headers=creds.backend())
    error_message(refused, 400)
    after = await scrape(client)

    requests = "herald_http_requests_total"
    assert delta(after, before, requests, method="GET", route="/health", status="200") == 3
    assert delta(after, before, requests, method="GET", route=TEMPLATE, status="404") == 2
    assert delta(after, before, requests, method="GET", route="unmatched", status="404") == 1
    send = {"method": "POST", "route": "/v3/notifications"}
    assert delta(after, before, requests, **send, status="202") == 1
    assert delta(after, before, requests, **send, status="400") == 1
    # The scrape before this one, counted once its answer was sent.
    assert delta(after, before, requests, method="GET", route="/metrics", status="200") == 1
    assert delta(after, before, "herald_sends_accepted_total") == 1
    # Raw paths never become labels.
    assert not [key for key in after if any("98765432" in v for _, v in key[1])]

    count = "herald_http_request_duration_seconds_count"
    assert delta(after, before, count, method="GET", route="/health") == 3
    assert delta(after, before, count, method="POST", route="/v3/notifications") == 2
    took = delta(after, before, "herald_http_request_duration_seconds_sum", **send)
    assert 0 < took < 10
    inf = "herald_http_request_duration_seconds_bucket"
    assert delta(after, before, inf, method="GET", route="/health", le="+Inf") == 3


async def test_queue_depth_and_the_oldest_waiting_job(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # The app reads through the test's transaction, whose now() stays put: ages are exact.
    await session.execute(
        text(
            "INSERT INTO pgqueuer (priority, entrypoint, status, execute_after) VALUES "
            "(0, 'test.metrics', 'queued', now() - interval '30 seconds'), "
            "(0, 'test.metrics', 'queued', now() - interval '5 seconds'), "
            "(0, 'test.metrics', 'queued', now() + interval '1 hour'), "
            "(0, 'test.metrics', 'picked', now() - interval '2 minutes')"
        )
    )
    series = await scrape(client)
    jobs = "herald_queue_jobs"
    assert value(series, jobs, entrypoint="test.metrics", state="waiting") == 2
    assert value(series, jobs, entrypoint="test.metrics", state="scheduled") == 1
    assert value(series, jobs, entrypoint="test.metrics", state="running") == 1
    assert value(series, "herald_queue_oldest_waiting_seconds") == 30.0
    assert value(series, "herald_queue_stats_up") == 1

    await session.execute(text("DELETE FROM pgqueuer WHERE entrypoint = 'test.metrics'"))
    series = await scrape(client)
    # Once seen, an emptied state reads 0 instead of disappearing.
    assert (jobs, frozenset({("entrypoint", "test.metrics"), ("state", "waiting")})) in series
    assert value(series, jobs, entrypoint="test.metrics", state="waiting") == 0
    assert value(series, "herald_queue_oldest_waiting_seconds") == 0


async def test_pool_and_sockets(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    series = await scrape(client)
    assert value(series, "herald_db_pool_size") == 5  # the tests' engine
    # The test's own session holds one connection while the app reads through it.
    assert value(series, "herald_db_pool_checked_out") == engine.pool.checkedout() >= 1  # type: ignore[attr-defined]
    assert value(series, "herald_db_pool_overflow") == 0
    assert ("herald_realtime_sockets", frozenset()) in series
    assert value(series, "herald_realtime_sockets") == 0


def _app(
    settings: Settings, engine: AsyncEngine, session: AsyncSession, **update: object
) -> FastAPI:
    app = create_app(settings.model_copy(update=update))
    app.state.engine = engine
    app.state.sessionmaker = session.info["maker"]
    return app


async def test_a_metrics_token_protects_the_endpoint(
    settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> None:
    token = "metrics-token-0123456789"
    app = _app(settings, engine, session, metrics_token=SecretStr(token))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": f"Bearer {token}x"},
        ):
            refused = await client.get("/metrics", headers=headers)
            assert "A valid Bearer token" in error_message(refused, 401)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "herald_" not in refused.text
        series = await scrape(client, {"Authorization": f"Bearer {token}"})
        # A registry per app: this one counted only its own four refusals.
        refusals = value(
            series, "herald_http_requests_total", method="GET", route="/metrics", status="401"
        )
        assert refusals == 4
        assert value(series, "herald_http_requests_total", method="GET", route="/health") == 0


async def test_metrics_can_be_switched_off(
    settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> None:
    app = _app(settings, engine, session, metrics=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        error_message(await client.get("/metrics"), 404)
        assert (await client.get("/health")).status_code == 200


async def test_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_one_router_under_two_prefixes_has_two_templates(
    client: httpx.AsyncClient, creds: Creds, admin: dict[str, str]
) -> None:
    before = await scrape(client)
    # A router's own prefix, with a parameter in it.
    missing = await client.get(f"/admin/apps/{creds.id}/requests/{uuid.uuid4()}", headers=admin)
    error_message(missing, 404)
    for version in ("v3", "v4"):
        response = await client.post(
            f"/{version}/workflows/no-such-key/cancel-run", json={}, headers=creds.backend()
        )
        assert response.status_code < 500, response.text
    after = await scrape(client)
    for version in ("v3", "v4"):
        route = f"/{version}/workflows/{{identifier}}/cancel-run"
        count = "herald_http_request_duration_seconds_count"
        assert delta(after, before, count, method="POST", route=route) == 1
    route = "/admin/apps/{app_id}/requests/{request_id}"
    assert delta(after, before, count, method="GET", route=route) == 1


async def test_process_series(client: httpx.AsyncClient) -> None:
    series = await scrape(client)
    assert value(series, "process_resident_memory_bytes") > 10_000_000
    assert value(series, "process_cpu_seconds_total") > 0
