"""Expo push: up to 100 messages per `POST /--/api/v2/push/send`, one ticket back per message
(in order); receipts fetched later from `/--/api/v2/push/getReceipts` (app/delivery/receipts.py).

Ticket and receipt errors are read from `details.error`: DeviceNotRegistered means the token
is dead; MessageRateExceeded is retried; MessageTooBig is permanent; InvalidCredentials (the
FCM/APNs credentials stored at Expo) is a configuration error."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.config import Settings
from app.delivery.channels import push
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer, Client
from app.delivery.outcome import Outcome, Result, retry_after

BATCH = 100
RECEIPTS_BATCH = 1000
_TOO_MANY_PROJECTS = "PUSH_TOO_MANY_EXPERIENCE_IDS"


def url(settings: Settings, path: str) -> str:
    return f"{settings.expo_base_url.rstrip('/')}/--/api/v2/push/{path}"


def headers(config: dict[str, Any]) -> dict[str, str]:
    token = config.get("ACCESS_TOKEN")
    out = {"Accept": "application/json"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def message(attempt: Attempt) -> dict[str, Any]:
    content = attempt.content
    options = content.get("push") or {}
    out: dict[str, Any] = {}
    if content.get("title"):
        out["title"] = content["title"]
    if content.get("message"):
        out["body"] = content["message"]
    data = dict(content.get("data") or {})
    if content.get("url"):
        data.setdefault("url", content["url"])
    if data:
        out["data"] = data
    for ours, theirs in (("ttl", "ttl"), ("sound", "sound"), ("badge", "badge")):
        if ours in options:
            out[theirs] = options[ours]
    if "priority" in options:
        out["priority"] = options["priority"]
    if "collapseKey" in options:
        out["collapseId"] = options["collapseKey"]
    out = push.merged(out, passthrough(attempt.override))
    out["to"] = attempt.target
    return out


def of_error(details: object, text: str, status: int | None) -> Outcome:
    """A ticket's or receipt's error, by its `details.error` code."""
    code = details.get("error") if isinstance(details, dict) else None
    label = f"{code}: {text}" if code else text
    if code == "DeviceNotRegistered":
        return Outcome(Result.PERMANENT, label, status, dead_target=True)
    if code == "MessageRateExceeded":
        return Outcome(Result.TRANSIENT, label, status)
    if code in ("InvalidCredentials", "MismatchSenderId"):
        return Outcome(Result.CONFIG, label, status)
    # MessageTooBig and anything Expo adds later: sending it again would not help.
    return Outcome(Result.PERMANENT, label, status)


def _request_error(answer: Answer) -> tuple[Outcome, dict[str, Any] | None]:
    """A refused request: its outcome for every message, and Expo's per-project split when
    the messages belong to several projects."""
    body = push.json_body(answer)
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), str) else ""
    text = f"HTTP {answer.status} {code or ''} {first.get('message') or answer.body[:200]}"
    text = " ".join(text.split())
    status = answer.status
    if code == _TOO_MANY_PROJECTS and isinstance(first.get("details"), dict):
        return Outcome(Result.PERMANENT, text, status), first["details"]
    if status in (408, 429) or status >= 500:
        return Outcome(
            Result.TRANSIENT, text, status, retry_after(answer.headers.get("retry-after"))
        ), None
    if status in (401, 403):
        return Outcome(Result.CONFIG, text, status), None
    return Outcome(Result.PERMANENT, text, status), None


async def _send(
    http: Client, settings: Settings, config: dict[str, Any], messages: list[dict[str, Any]]
) -> list[Outcome]:
    answer = await push.post(http, url(settings, "send"), push.compact(messages), headers(config))
    if isinstance(answer, Outcome):
        return [answer] * len(messages)
    if answer.status != 200:
        outcome, projects = _request_error(answer)
        if projects is None:
            return [outcome] * len(messages)
        # Nothing was sent: send each project's tokens on their own.
        outcomes: list[Outcome] = [outcome] * len(messages)
        for tokens in projects.values():
            picked = [
                i for i, m in enumerate(messages) if isinstance(tokens, list) and m["to"] in tokens
            ]
            if picked and len(picked) < len(messages):
                for i, found in zip(
                    picked,
                    await _send(http, settings, config, [messages[i] for i in picked]),
                    strict=True,
                ):
                    outcomes[i] = found
        return outcomes
    body = push.json_body(answer)
    tickets = body.get("data") if isinstance(body, dict) else None
    if not isinstance(tickets, list) or len(tickets) != len(messages):
        # Which messages went out is unknown: never sent again (status code withheld).
        error = f"Expo answered {len(tickets) if isinstance(tickets, list) else 'no'} tickets"
        return [Outcome(Result.TRANSIENT, f"{error} for {len(messages)} messages")] * len(messages)
    out: list[Outcome] = []
    for ticket in tickets:
        if isinstance(ticket, dict) and ticket.get("status") == "ok" and ticket.get("id"):
            out.append(Outcome.sent(str(ticket["id"]), 200))
        elif isinstance(ticket, dict) and ticket.get("status") == "error":
            out.append(of_error(ticket.get("details"), str(ticket.get("message") or ""), 200))
        else:
            out.append(Outcome(Result.TRANSIENT, f"unreadable ticket {str(ticket)[:100]}"))
    return out


async def send_batch(
    attempts: Sequence[Attempt], mark_data: Callable[[], Awaitable[None]]
) -> list[Outcome]:
    """Send attempts that share one provider config; an outcome per attempt, in order."""
    first = attempts[0]
    config = provider_config(first.config, first.override)
    messages = [message(a) for a in attempts]
    await mark_data()
    out: list[Outcome] = []
    for start in range(0, len(messages), BATCH):
        out += await _send(first.http, first.settings, config, messages[start : start + BATCH])
    return out


async def send(attempt: Attempt) -> Outcome:
    [outcome] = await send_batch([attempt], attempt.mark_data)
    return outcome


async def receipts(
    http: Client, settings: Settings, config: dict[str, Any], ids: list[str]
) -> dict[str, Any] | Outcome:
    """Receipts by ticket id (those Expo has; missing ones are not ready yet), or the
    outcome of a failed request."""
    answer = await push.post(
        http, url(settings, "getReceipts"), push.compact({"ids": ids}), headers(config)
    )
    if isinstance(answer, Outcome):
        return answer
    if answer.status != 200:
        return _request_error(answer)[0]
    body = push.json_body(answer)
    found = body.get("data") if isinstance(body, dict) else None
    return found if isinstance(found, dict) else {}
