"""Errors rendered in Engagespot's shape: {"status": "error", "message": …}."""

import logging
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from app.faults import Fault, fault_of

log = logging.getLogger("herald.errors")


class AppError(Exception):
    status_code = 400

    def __init__(self, message: str | list[str], *, headers: dict[str, str] | None = None):
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.message = message
        self.headers = headers


class BadRequest(AppError):
    status_code = 400

    def __init__(self, message: str | list[str]):
        # The seed prints validation errors as a list of strings.
        super().__init__([message] if isinstance(message, str) else message)


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Unprocessable(AppError):
    status_code = 422


NO_AUTH = "No auth params (or combination of params) were found in the request"
NUL_REFUSED = "strings must not contain NUL (\\u0000) characters"
# PostgreSQL stores no NUL in text (22021) or jsonb (22P05). Herald never makes one, so a
# statement failing with these states was given one by the request: a 400, not a 500.
_NUL_STATES = frozenset({"22021", "22P05"})


class ErrorBody(BaseModel):
    """The shape of every error answer, as the OpenAPI document shows it (see error_body)."""

    model_config = ConfigDict(title="Error")

    status: Literal["error"]
    statusCode: int
    message: str | list[str]


# What each error status means at Herald, for the OpenAPI document.
REASONS = {
    400: "The request is invalid: a parameter, the body, or its JSON",
    401: "The credentials are missing or wrong",
    403: "Refused: the request's signature is missing or wrong, or it may not do this",
    404: "Not found",
    409: "Conflict with the current state",
    413: "The request body or headers are too large",
    422: "Well-formed but refused",
    503: "The database is unavailable; retry later",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Document error answers a route gives beyond the ones its parameters and credentials
    imply (app/console/openapi.py derives those): `responses=answers(409)`."""
    return {code: {"description": REASONS[code]} for code in codes}


def error_body(message: str | Sequence[str], status_code: int) -> dict[str, Any]:
    msg: str | list[str] = message if isinstance(message, str) else list(message)
    return {"status": "error", "statusCode": status_code, "message": msg}


def error_response(
    message: str | Sequence[str], status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, status_code), status_code=status_code, headers=headers)


_SHAPES = {
    "model_attributes_type": "must be an object",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "datetime_type": "must be an ISO 8601 date-time",
    "datetime_parsing": "must be an ISO 8601 date-time",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time",
}


def _describe(err: dict[str, Any]) -> str:
    """Say what is wrong the way Engagespot's validator does: `notification must be an object`."""
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    # Drop pydantic's union-branch labels such as `str`, `InlineRecipient` or `list[any]`.
    loc = [
        p
        for p in loc
        if not (p[:1].isupper() or "[" in p or p in ("str", "int", "constrained-str"))
    ]
    where = ".".join(loc) or "request body"
    located = err.get("loc", ())
    if len(located) > 1 and located[0] == "header":
        where = str(located[1])  # a header's name, though it looks like a union label
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind == "json_invalid":
        return "request body is not valid JSON"
    if kind == "missing":
        return f"{where} is required"
    if kind in _SHAPES:
        return f"{where} {_SHAPES[kind]}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where} must not be greater than {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{where} must not be less than {ctx.get('ge', ctx.get('gt'))}"
    if kind == "string_too_long":
        return f"{where} must be shorter than or equal to {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"{where} should not be empty"
    if kind == "too_long":
        return f"{where} must contain no more than {ctx.get('max_length')} elements"
    if kind == "too_short":
        return f"{where} must contain at least {ctx.get('min_length')} elements"
    if kind == "string_pattern_mismatch":
        return f"{where} must match {ctx.get('pattern')} regular expression"
    if kind == "literal_error":
        return f"{where} must be one of the following values: {ctx.get('expected', '')}"
    if kind == "extra_forbidden":
        return f"property {where} should not exist"
    return f"{where}: {err.get('msg', 'is invalid')}"


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.message, exc.status_code, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = list(dict.fromkeys(_describe(e) for e in exc.errors()))
    return error_response(messages or ["request is invalid"], 400)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "Route not found"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(detail, exc.status_code, headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path.

    Starlette's 405 names the methods of the first route whose path matched; a path served
    by several routes (GET and POST on /v3/notifications) has more. Asking the router,
    method by method, sees through included routers without reading their internals."""
    routes = [r for r in request.app.router.routes if isinstance(r, BaseRoute)]
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "type": "http", "method": method})[0] == Match.FULL
            for route in routes
        )
    ]


# A database restart takes seconds; a client that waits this long and retries (with its
# Idempotency-Key for a send) usually gets through.
RETRY_AFTER = "1"
_FAULT_MESSAGES = {
    Fault.UNAVAILABLE: "The database is unavailable; retry shortly",
    Fault.BUSY: "Herald is busy; retry shortly",
}
# What reaches the error handler when the database fails: SQLAlchemy's wrappers, the pool's
# checkout timeout, and what asyncpg raises unwrapped (a refused or reset connection).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeout,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer a database failure here, inside the app, so the access log sees the status and
    the client's keep-alive connection stays usable (an exception that escapes the app is
    logged again by the server, which then closes the connection)."""
    # SQLAlchemy wraps the driver's error; the hot paths on the driver's connection
    # (db.reading, db.autocommitting) raise it as it is.
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(driver_error, "sqlstate", None) in _NUL_STATES:
        return error_response([NUL_REFUSED], 400)
    fault = fault_of(exc)
    if fault is None:
        return await _unexpected(request, exc)
    # No traceback: the fault is the database's, not a bug; one line says what happened.
    log.warning(
        "database %s on %s %s: %s: %s",
        fault.value,
        request.method,
        request.url.path,
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )
    return error_response(_FAULT_MESSAGES[fault], 503, {"Retry-After": RETRY_AFTER})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response("Internal server error", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(Exception, _unexpected)
