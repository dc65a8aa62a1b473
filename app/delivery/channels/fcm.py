"""FCM HTTP v1: one `messages:send` per token, authorised by an OAuth2 access token from the
service account's JWT-bearer grant (cached per process until shortly before it expires).

Errors are read from their structured codes (`error.details[].errorCode`, `error.status`,
the BadRequest field violations), never from message text: UNREGISTERED and
SENDER_ID_MISMATCH, and an INVALID_ARGUMENT naming `message.token`, mean the token is dead."""

import hashlib
import json
import time
from typing import Any

import httpx
import jwt

from app.delivery import credentials
from app.delivery.channels import push
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer, BlockedAddress
from app.delivery.outcome import Outcome, Result, retry_after

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKENS = push.TokenCache()
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def _account(config: dict[str, Any]) -> tuple[credentials.ServiceAccount, str] | Outcome:
    raw = config.get("SERVICE_ACCOUNT")
    # A send's `_config` may carry the JSON as an object.
    text = json.dumps(raw, separators=(",", ":")) if isinstance(raw, dict) else str(raw or "")
    if not text:
        return Outcome(Result.CONFIG, "SERVICE_ACCOUNT is not set", handed_over=False)
    try:
        account = credentials.service_account(text)
    except ValueError as exc:
        return Outcome(Result.CONFIG, f"SERVICE_ACCOUNT {exc}", handed_over=False)
    return account, hashlib.sha256(text.encode()).hexdigest()


def assertion(account: credentials.ServiceAccount, *, now: int) -> str:
    """The signed JWT the grant exchanges for an access token."""
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + 3600,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


async def _grant(attempt: Attempt, account: credentials.ServiceAccount) -> tuple[str, float]:
    form = {"grant_type": GRANT_TYPE, "assertion": assertion(account, now=int(time.time()))}
    # Nothing of the message has left yet: a failure here is never ambiguous.
    try:
        answer = await attempt.http.post(account.token_uri, data=form)
    except BlockedAddress as exc:
        raise push.Refused(Outcome(Result.CONFIG, f"token_uri: {exc}", handed_over=False)) from None
    except httpx.ConnectError as exc:
        raise push.Refused(
            Outcome(Result.UNREACHABLE, f"token grant: cannot connect: {exc}", handed_over=False)
        ) from None
    except (httpx.HTTPError, TimeoutError) as exc:
        raise push.Refused(
            Outcome(
                Result.TRANSIENT, f"token grant: {type(exc).__name__}: {exc}", handed_over=False
            )
        ) from None
    body = push.json_body(answer)
    granted = body.get("access_token") if isinstance(body, dict) else None
    if answer.status == 200 and isinstance(granted, str) and granted:
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        return granted, max(seconds, 1.0)
    error = body.get("error") if isinstance(body, dict) else None
    text = f"token grant at {account.token_uri}: HTTP {answer.status} {error or answer.body[:200]}"
    if answer.status in (408, 429) or answer.status >= 500:
        raise push.Refused(
            Outcome(
                Result.TRANSIENT,
                text,
                answer.status,
                retry_after(answer.headers.get("retry-after")),
                handed_over=False,
            )
        )
    # invalid_grant (a deleted key, a clock far off), invalid_client, …: the account is wrong.
    raise push.Refused(Outcome(Result.CONFIG, text, answer.status, handed_over=False))


def message(attempt: Attempt) -> dict[str, Any]:
    """The v1 `message` for this token: notification, data (as strings), the portable push
    options, then `override.fcm` merged in."""
    content = attempt.content
    options = content.get("push") or {}
    out: dict[str, Any] = {}
    notification = {
        k: v for k, v in (("title", content.get("title")), ("body", content.get("message"))) if v
    }
    if notification:
        out["notification"] = notification
    data = dict(content.get("data") or {})
    if content.get("url"):
        data.setdefault("url", content["url"])
    if data:
        out["data"] = data
    android: dict[str, Any] = {}
    apns_headers: dict[str, str] = {}
    if "priority" in options:
        android["priority"] = "HIGH" if options["priority"] == "high" else "NORMAL"
        apns_headers["apns-priority"] = "10" if options["priority"] == "high" else "5"
    if "ttl" in options:
        android["ttl"] = f"{options['ttl']}s"
        expires = int(attempt.created_at.timestamp()) + options["ttl"] if options["ttl"] else 0
        apns_headers["apns-expiration"] = str(expires)
    if "collapseKey" in options:
        android["collapse_key"] = options["collapseKey"]
        apns_headers["apns-collapse-id"] = options["collapseKey"]
    sound = {"sound": options["sound"]} if "sound" in options else {}
    if sound:
        android["notification"] = dict(sound)
    aps: dict[str, Any] = {**sound, **({"badge": options["badge"]} if "badge" in options else {})}
    if android:
        out["android"] = android
    if apns_headers or aps:
        out["apns"] = {
            **({"headers": apns_headers} if apns_headers else {}),
            **({"payload": {"aps": aps}} if aps else {}),
        }
    out = push.merged(out, passthrough(attempt.override))
    out["token"] = attempt.target
    if isinstance(out.get("data"), dict):
        out["data"] = push.stringified(out["data"])
    return out


def _codes(error: dict[str, Any]) -> tuple[set[str], bool]:
    """The FcmError codes of an error, and whether a field violation names the token."""
    codes: set[str] = set()
    names_token = False
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _FCM_ERROR and isinstance(detail.get("errorCode"), str):
            codes.add(detail["errorCode"])
        violations = detail.get("fieldViolations")
        if kind == _BAD_REQUEST and isinstance(violations, list):
            names_token = names_token or any(
                isinstance(v, dict) and v.get("field") == "message.token" for v in violations
            )
    return codes, names_token


def classify(answer: Answer) -> tuple[Outcome, bool]:
    """The attempt's outcome, and whether the access token itself was refused."""
    status = answer.status
    body = push.json_body(answer)
    if 200 <= status < 300:
        name = body.get("name") if isinstance(body, dict) else None
        return Outcome.sent(name if isinstance(name, str) else None, status), False
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    codes, names_token = _codes(error)
    rpc = error.get("status") if isinstance(error.get("status"), str) else ""
    label = "/".join(sorted(codes)) or rpc or "error"
    text = f"HTTP {status} {label}: {str(error.get('message') or answer.body)[:200]}"
    wait = retry_after(answer.headers.get("retry-after"))
    if "UNREGISTERED" in codes or "SENDER_ID_MISMATCH" in codes:
        return Outcome(Result.PERMANENT, text, status, dead_target=True), False
    if "THIRD_PARTY_AUTH_ERROR" in codes:
        # The APNs certificate or web-push key stored in Firebase is wrong.
        return Outcome(Result.CONFIG, text, status), False
    if status == 400 or "INVALID_ARGUMENT" in codes or rpc == "INVALID_ARGUMENT":
        return Outcome(Result.PERMANENT, text, status, dead_target=names_token), False
    if status == 401:
        return Outcome(Result.CONFIG, text, status), True
    if status in (408, 429) or status >= 500 or codes & {"QUOTA_EXCEEDED", "UNAVAILABLE"}:
        return Outcome(Result.TRANSIENT, text, status, wait), False
    if status in (403, 404):
        # Without an FcmError code: the project or the account's permission is wrong.
        return Outcome(Result.CONFIG, text, status), False
    return Outcome(Result.PERMANENT, text, status), False


async def send(attempt: Attempt) -> Outcome:
    found = _account(provider_config(attempt.config, attempt.override))
    if isinstance(found, Outcome):
        return found
    account, key = found
    if not attempt.target:
        return Outcome(Result.PERMANENT, "no FCM token")
    base = attempt.settings.fcm_base_url.rstrip("/")
    url = f"{base}/v1/projects/{account.project_id}/messages:send"
    body = push.compact({"message": message(attempt)})

    async def mint() -> tuple[str, float]:
        return await _grant(attempt, account)

    for last in (False, True):
        try:
            token = await TOKENS.get(key, mint)
        except push.Refused as refused:
            return refused.outcome
        await attempt.mark_data()
        answer = await push.post(attempt.http, url, body, {"Authorization": f"Bearer {token}"})
        if isinstance(answer, Outcome):
            return answer
        outcome, token_refused = classify(answer)
        if token_refused and not last:
            # Revoked or expired early: one fresh grant, then it is the account's fault.
            TOKENS.drop(key, token)
            continue
        return outcome
    raise AssertionError("unreachable")
