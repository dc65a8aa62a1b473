"""Reading bodies that clients send as JSON, as a form, or not at all."""

import json
import math
import re
from typing import Any

from fastapi import Request

from app.errors import NUL_REFUSED, BadRequest


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
    except (ValueError, RecursionError) as exc:
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


# Deeper than any notification payload; far from what exhausts the interpreter's stack.
MAX_DEPTH = 100
# A number that may overflow a float (1e400, or 400 digits with a decimal point).
_HUGE_NUMBER = re.compile(rb"\d[eE][+-]?\d{3}|\d{300}")


class _Unstorable(Exception):
    pass


def _no_constant(name: str) -> float:
    raise _Unstorable(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:20]}…"
        raise _Unstorable(f"number {shown} is out of range")
    return value


def json_problem(raw: bytes) -> str | None:
    """Say why a JSON body cannot be stored as sent; None when it can, or is not JSON at all
    (the route's own parser then says what is wrong with it).

    Python's parser takes more than JSON (NaN, Infinity, 1e400 as infinity) and keeps what
    PostgreSQL refuses (NUL characters, unpaired surrogates); deep nesting exhausts the
    interpreter's stack."""
    # Most bodies hold none of these, and are not parsed twice.
    if (
        b"\\u" not in raw
        and b"NaN" not in raw
        and b"Infinity" not in raw
        and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH
        and not _HUGE_NUMBER.search(raw)
    ):
        return None
    try:
        parsed = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except _Unstorable as exc:
        return str(exc)
    except RecursionError:
        return f"JSON must not nest deeper than {MAX_DEPTH} levels"
    except ValueError:
        return None
    stack: list[tuple[Any, int]] = [(parsed, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return f"JSON must not nest deeper than {MAX_DEPTH} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (problem := _string_problem(key)):
                    return problem
                stack.append((item, depth + 1))
        elif isinstance(value, str) and (problem := _string_problem(value)):
            return problem
    return None


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return NUL_REFUSED
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "strings must not contain unpaired UTF-16 surrogates"
    return None
