"""Query strings and JSON bodies read by the two hottest routes themselves, not by FastAPI.

FastAPI validates each declared parameter on its own, in Python, on every request: the
inbox page's six query parameters cost 40 µs of server CPU, the send's body and header
28 µs, where validating one model does the same work in 3 to 10 µs. These read the same
request parts with the same rules and raise the same RequestValidationError (locations
under "query", "header" or "body"), so the answers do not change; `parameters` and
`json_body` give the route's `openapi_extra` what FastAPI would have documented."""

import email.message
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

Model = TypeVar("Model", bound=BaseModel)
Header = TypeVar("Header", bound=BaseModel)

COMPONENTS = "#/components/schemas/{model}"
COMPONENTS_KEY = "x-herald-components"


def query(request: Request, model: type[Model]) -> Model:
    """The query string as `model` (its fields named as the parameters are)."""
    try:
        return model.model_validate(request.query_params)
    except ValidationError as exc:
        raise RequestValidationError(_under("query", exc)) from None


def headers(request: Request, model: type[Model]) -> Model:
    """The headers as `model`, its fields aliased to the header names (looked up without
    regard to case; a repeated header gives its first value, as in FastAPI)."""
    try:
        return model.model_validate(request.headers)
    except ValidationError as exc:
        raise RequestValidationError(_under("header", exc)) from None


@dataclass(frozen=True, slots=True)
class Body:
    """A request body as FastAPI has it before validation: decoded JSON when it was sent as
    JSON, else its bytes; `sent` is False for an empty body."""

    sent: bool
    value: Any


async def decoded(request: Request) -> Body:
    """The body, read and decoded as FastAPI does for a model body (strict content type)
    before it solves any dependency: malformed JSON is a `json_invalid` error even for a
    caller without credentials; anything else unreadable is a plain 400. A dependency,
    declared first, so that it runs first."""
    raw = await request.body()
    if not raw:
        return Body(sent=False, value=None)
    if not _is_json(request.headers.get("content-type")):
        return Body(sent=True, value=raw)
    try:
        return Body(sent=True, value=json.loads(raw))
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except Exception as exc:  # e.g. bytes that are no Unicode, or nesting too deep
        raise HTTPException(400, "There was an error parsing the body") from exc


def validated(
    request: Request, body: Body, *, header_model: type[Header], body_model: type[Model]
) -> tuple[Header, Model]:
    """The headers and the body as their models. As in FastAPI, the errors of both are
    reported together, the headers' first; an empty body is `missing`."""
    errors: list[dict[str, Any]] = []
    try:
        found_headers = headers(request, header_model)
    except RequestValidationError as exc:
        errors += exc.errors()
    if not body.sent:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
    else:
        try:
            found_body = body_model.model_validate(body.value)
        except ValidationError as exc:
            errors += _under("body", exc)
    if errors:
        raise RequestValidationError(errors)
    return found_headers, found_body


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _under(where: str, exc: ValidationError) -> list[dict[str, Any]]:
    return [{**error, "loc": (where, *error["loc"])} for error in exc.errors(include_url=False)]


def parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters ("query" or "header") for the fields of `model`, as FastAPI
    documents declared ones (no `default` shown when it is None)."""
    schema = model.model_json_schema(by_alias=True, ref_template=COMPONENTS)
    required = set(schema.get("required", ()))
    out = []
    for name, field in schema["properties"].items():
        if "default" in field and field["default"] is None:
            field = {k: v for k, v in field.items() if k != "default"}
        out.append({"name": name, "in": where, "required": name in required, "schema": field})
    return out


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` entries for a required JSON body of `model`: the requestBody, and
    under COMPONENTS_KEY the schemas it refers to (app.console.openapi files them)."""
    _, top = models_json_schema([(model, "validation")], ref_template=COMPONENTS)
    reference = {"$ref": COMPONENTS.format(model=model.__name__)}
    return {
        "requestBody": {"content": {"application/json": {"schema": reference}}, "required": True},
        COMPONENTS_KEY: dict(top.get("$defs", {})),
    }
