"""Errors in Engagespot's shape; a 405 names every method its path serves."""

import re

import httpx
from fastapi import FastAPI

from tests.factories import Creds
from tests.factories import error_message as assert_error

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def _matches(template: str, path: str) -> bool:
    # A parameter matches one segment, except the bulk routes' names (app/inbox/router.py).
    segment = "(?!markAllNotificationsAs)[^/]+"
    pattern = "^" + re.sub(r"\\\{[^}]+\\\}", segment, re.escape(template)) + "$"
    return re.match(pattern, path) is not None


async def test_a_405_allows_every_method_of_its_path(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    tried = 0
    for template in paths:
        path = _concrete(template)
        # Several templates can match one path (/notifications/{id} and /notifications/x).
        served = {m.upper() for t, ops in paths.items() if _matches(t, path) for m in ops}
        for method in METHODS:
            if method in served:
                continue
            r = await client.request(method, path)
            assert_error(r, 405)
            allowed = {m.strip() for m in r.headers["allow"].split(",")}
            assert allowed == served, (method, path, r.headers["allow"])
            tried += 1
    assert tried > 60  # every path, not a few


async def test_bulk_routes_take_post_only(client: httpx.AsyncClient, creds: Creds) -> None:
    for name in ("Seen", "Read", "Deleted"):
        for method in ("GET", "DELETE"):
            r = await client.request(
                method, f"/v3/notifications/markAllNotificationsAs{name}", headers=creds.user("a")
            )
            assert_error(r, 405)
            assert r.headers["allow"] == "POST"


async def test_a_405_through_a_cleaned_path(client: httpx.AsyncClient) -> None:
    r = await client.request("PUT", "http://herald.test//v3//notifications/")
    assert_error(r, 405)
    assert r.headers["allow"] == "GET, POST"
