"""Profile edits: a shallow merge with Engagespot's `fcm.token` append, or an RFC 6902 patch."""

import copy
import json
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


# `copy` can double the document at each step (copy "" to "/a", then again…): unbounded, a
# few dozen operations from any inbox user exhaust CPU and memory. Values that `add` and
# `replace` bring are bounded by the request body; what `copy` brings is counted here.
MAX_PATCH_OPERATIONS = 100
MAX_COPIED_BYTES = 65_536


def apply_patch(profile: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    if len(operations) > MAX_PATCH_OPERATIONS:
        raise BadRequest(f"a JSON Patch may hold at most {MAX_PATCH_OPERATIONS} operations")
    result: Any = copy.deepcopy(profile)
    copied = 0
    try:
        for operation in operations:
            if isinstance(operation, dict) and operation.get("op") == "copy":
                source = jsonpatch.JsonPointer(operation["from"]).resolve(result)
                copied += len(json.dumps(source))
                if copied > MAX_COPIED_BYTES:
                    raise BadRequest(f"a JSON Patch may copy at most {MAX_COPIED_BYTES} bytes")
            result = jsonpatch.apply_patch(result, [operation], in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(f"invalid JSON Patch: {exc}") from exc
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        # jsonpatch raises these for malformed operation objects.
        raise BadRequest("invalid JSON Patch: each operation needs op and path") from exc
    if not isinstance(result, dict):
        raise BadRequest("invalid JSON Patch: the profile must stay a JSON object")
    return result


# Profile keys that say where a user's messages go (app/delivery/addresses.py reads them).
# With the app's `addressesFromBackendOnly`, only the API secret may change them.
ADDRESS_KEYS = (
    "email",
    "phoneNumber",
    "webhookUrl",
    "slack",
    "discord",
    "msTeams",
    "slackWebhookUrl",
    "discordWebhookUrl",
    "msTeamsWebhookUrl",
)


def addresses_changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [k for k in ADDRESS_KEYS if before.get(k) != after.get(k)]
