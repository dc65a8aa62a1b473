"""`/docs` (Swagger UI) and `/redoc`, with every asset served by Herald itself.

Air-gapped and egress-filtered networks are a reason to self-host: the pages load nothing from
a CDN, no fonts and no favicon either (static/README.md says what is vendored, from where)."""

import re
from base64 import b64encode
from hashlib import sha256
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.console import openapi

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/console/static"

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    # Behind a proxy that mounts Herald under a path, the page must ask for assets there.
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Serve Swagger UI for the OpenAPI document."""
    root, static = _prefix(request), _prefix(request) + STATIC_PATH
    return _same_origin_only(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - admin console",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
            oauth2_redirect_url=None,
            # No validator badge: it would fetch an image from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """Serve ReDoc for the OpenAPI document."""
    root, static = _prefix(request), _prefix(request) + STATIC_PATH
    return _same_origin_only(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - API reference",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon-32x32.png",
            with_google_fonts=False,
        )
    )


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """Let the browser fetch nothing from another host, whatever the assets ask for.

    ReDoc 2 always shows Redocly's logo from cdn.redoc.ly; refused, it hides it. Requests made
    from the page ("Try it out", which carries the admin token) can only reach Herald, too."""
    scripts = " ".join(
        f"'sha256-{b64encode(sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(bytes(page.body))
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    )
    return page


def install(app: FastAPI) -> None:
    """Serve the console and the corrected OpenAPI document on `app`."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="console-static")
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
