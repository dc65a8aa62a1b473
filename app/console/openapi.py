"""The OpenAPI document, corrected to say what Herald really answers.

FastAPI documents a 422 that Herald never sends (validation errors are 400s, see errors.py), no
error answers, and one security alternative per header. This rebuilds each operation from what
its route declares: the credentials its auth dependency accepts (auth.dependencies.ACCEPTS), a
404 for a path parameter, the edge's refusals (edge.REFUSALS), and the extra codes a route names
with `responses=answers(…)`. Routes added later get the same treatment without doing anything."""

import json
from collections.abc import Iterator
from itertools import product
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app.auth.dependencies import ACCEPTS, Accepts
from app.edge import REFUSALS
from app.errors import REASONS, ErrorBody
from app.kit import parts

ERROR_REF = "#/components/schemas/Error"
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def document(app: FastAPI) -> dict[str, Any]:
    """Build (once) the document /openapi.json serves."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
            ErrorBody.model_json_schema()
        )
        for route in _routes(app):
            for method in sorted(route.methods):
                _correct(schema, schema["paths"][route.path_format][method.lower()], route)
        _drop_unused(schema, _FASTAPI_VALIDATION)
        app.openapi_schema = schema
    return app.openapi_schema


def _routes(app: FastAPI) -> Iterator[Any]:
    """The API routes in the document, with their effective (prefixed) paths."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context


def _correct(schema: dict[str, Any], operation: dict[str, Any], route: Any) -> None:
    # A body the route reads itself (kit.parts) brings the schemas it refers to.
    components = schema["components"]["schemas"]
    for name, component in operation.pop(parts.COMPONENTS_KEY, {}).items():
        components.setdefault(name, component)
    declared = {str(code) for code in route.responses}
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "422" not in declared:
        responses.pop("422", None)

    accepts = _accepts(route.dependant)
    codes = set(REFUSALS)
    if accepts is not None:
        codes.add(accepts.refusal)
        operation["security"] = [{name: [] for name in combo} for combo in accepts.requirements]
        text = operation.get("description", "").rstrip()
        operation["description"] = f"{text}\n\n{accepts.sentence}" if text else accepts.sentence
    else:
        operation.pop("security", None)
    # A path id may name no row; a text one with an encoded `/` names no route.
    if any(p.get("in") == "path" for p in operation.get("parameters", ())):
        codes.add(404)

    for derived in sorted(codes):
        responses.setdefault(str(derived), {"description": REASONS[derived]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response.setdefault("description", REASONS.get(int(status), "Error"))
            response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    operation["responses"] = dict(sorted(responses.items()))
    _example_bodies(schema, operation)


def _accepts(dependant: Dependant) -> Accepts | None:
    """What the route's auth dependencies accept together; None for an open route."""
    found = list(dict.fromkeys(_auth_dependencies(dependant)))
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    # Every dependency must pass: each accepted combination takes one of each.
    combos = tuple(
        tuple(dict.fromkeys(name for combo in choice for name in combo))
        for choice in product(*(a.requirements for a in found))
    )
    return Accepts(combos, " ".join(a.sentence for a in found))


def _auth_dependencies(dependant: Dependant) -> Iterator[Accepts]:
    for sub in dependant.dependencies:
        accepts = ACCEPTS.get(sub.call) if sub.call is not None else None
        if accepts is not None:
            yield accepts
        else:
            yield from _auth_dependencies(sub)


def _example_bodies(schema: dict[str, Any], operation: dict[str, Any]) -> None:
    """Give each request body the example its schema carries, so "Try it out" sends it."""
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        if "example" in media or "examples" in media:
            continue
        example = _schema_example(schema, media.get("schema", {}))
        if example is not None:
            media["example"] = example


def _schema_example(schema: dict[str, Any], node: dict[str, Any]) -> Any:
    if node.get("examples"):
        return node["examples"][0]
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _schema_example(schema, schema["components"]["schemas"].get(name, {}))
    for option in node.get("anyOf", ()):
        example = _schema_example(schema, option)
        if example is not None:
            return example
    return None


def _drop_unused(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    """Remove components nothing refers to any more (in order: a later one may be used only
    by an earlier one)."""
    components = schema["components"]["schemas"]
    for name in names:
        removed = components.pop(name, None)
        if removed is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
            components[name] = removed
