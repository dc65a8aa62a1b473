"""Count and time HTTP requests by route template, with two small ASGI layers.

`Instrument` sits outermost, so it also sees answers given before routing (size refusals,
CORS preflights). Only the router knows the matched route, and it records it in the scope it
was given, which a middleware in between may have copied (the edge does, to clean a path):
so `RouteProbe`, innermost, hands the route up through a holder both scopes share."""

import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics

_SEEN = "herald.seen"


@dataclass
class _Seen:
    route: str | None = None
    status: int = 0


class Instrument:
    def __init__(self, app: ASGIApp, *, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = _Seen()

        async def send_seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            await send(message)

        try:
            await self.app({**scope, _SEEN: seen}, receive, send_seen)
        except BaseException:
            # Starlette's outermost layer turns what escapes into a 500.
            seen.status = seen.status or 500
            raise
        finally:
            self.metrics.observe(
                scope["method"], seen.route, seen.status, time.perf_counter() - started
            )


class RouteProbe:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            seen = scope.get(_SEEN)
            # path_format: the template without convertors (`{notification_id}`, not
            # `{notification_id:item}`).
            route = scope.get("route")
            path = getattr(route, "path_format", None) or getattr(route, "path", None)
            if seen is not None and isinstance(path, str):
                seen.route = template(scope["path"], path)


def template(path: str, route_path: str) -> str:
    """The full path template of the route that matched `path`.

    FastAPI (0.16x) leaves an included router's routes their own paths, without the
    prefixes they were included under (`/notifications/{notification_id}` under `/v3`). Our
    prefixes are literal, so they are the segments of the request path before the route's."""
    extra = path.count("/") - route_path.count("/")
    if extra <= 0 or ":path}" in route_path:
        return route_path
    return "/".join(path.split("/", extra + 1)[: extra + 1]) + route_path
