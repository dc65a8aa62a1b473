"""Profile edits: a shallow merge with Engagespot's `fcm.token` append, or an RFC 6902 patch."""

import copy
from typing import Any

import jsonpatch

from app.errors import BadRequest


def merge(profile: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge top-level keys; `{"fcm": {"token": t}}` appends t to `fcm.tokens` once."""
    result = copy.deepcopy(profile)
    for key, value in changes.items():
        if key == "fcm" and isinstance(value, dict) and "token" in value:
            result["fcm"] = _with_fcm_token(result.get("fcm"), value)
        else:
            result[key] = value
    return result


def _with_fcm_token(current: object, change: dict[str, Any]) -> dict[str, Any]:
    fcm: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    extra = {k: v for k, v in change.items() if k != "token"}
    fcm.update(extra)
    tokens = fcm.get("tokens")
    tokens = list(tokens) if isinstance(tokens, list) else []
    token = change["token"]
    if isinstance(token, str) and token and token not in tokens:
        tokens.append(token)
    fcm["tokens"] = tokens
    return fcm


def apply_patch(profile: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    try:
        result = jsonpatch.apply_patch(profile, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(f"invalid JSON Patch: {exc}") from exc
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        # jsonpatch raises these for malformed operation objects.
        raise BadRequest("invalid JSON Patch: each operation needs op and path") from exc
    if not isinstance(result, dict):
        raise BadRequest("invalid JSON Patch: the profile must stay a JSON object")
    return result
