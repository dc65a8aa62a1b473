"""Reading bodies that clients send as JSON, as a form, or not at all."""

import json
from typing import Any

from fastapi import Request

from app.errors import BadRequest


async def optional_object(request: Request) -> dict[str, Any]:
    """Return the body as a dict: {} when absent; a form becomes a dict of strings."""
    raw = await request.body()
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise BadRequest("request body must be a JSON object")
    return parsed


def truthy(value: object, *, default: bool = True) -> bool:
    """`read=true` arrives as a bool from JSON and as a string from forms."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)
