"""The HTTP e-mail APIs: SendGrid, Mailgun and Postmark, each at a base-URL setting.

A crash while the request is on the wire may or may not have sent the e-mail, so the
delivery is marked before the request goes out (see the crash policy in the engine)."""

import base64
import json
from typing import Any

import httpx

from app.delivery.channels import email_message
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import Answer, BlockedAddress
from app.delivery.outcome import Outcome, Result, of_http


async def _post(attempt: Attempt, url: str, **kwargs: Any) -> Answer | Outcome:
    await attempt.mark_data()
    try:
        return await attempt.http.post(url, **kwargs)
    except BlockedAddress as exc:
        return Outcome(Result.CONFIG, str(exc))
    except httpx.ConnectError as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect: {exc}", handed_over=False)
    except (httpx.HTTPError, TimeoutError) as exc:
        return Outcome(Result.TRANSIENT, f"{type(exc).__name__}: {exc}")


def _classified(answer: Answer | Outcome, *, message_id_key: str | None = None) -> Outcome:
    if isinstance(answer, Outcome):
        return answer
    outcome = of_http(answer.status, answer.body, retry_header=answer.headers.get("retry-after"))
    if outcome.result is Result.SENT and message_id_key:
        try:
            found = json.loads(answer.body).get(message_id_key)
        except (ValueError, AttributeError):
            found = None
        return Outcome.sent(str(found) if found else None, answer.status)
    if outcome.result is Result.SENT:
        return Outcome.sent(answer.headers.get("x-message-id"), answer.status)
    return outcome


def _recipients(attempt: Attempt) -> tuple[list[str], list[str]]:
    content = attempt.content
    to = attempt.target or ""
    cc = [a for a in content.get("cc") or [] if a != to]
    bcc = [a for a in content.get("bcc") or [] if a != to and a not in cc]
    return cc, bcc


async def sendgrid(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    address, name = email_message.sender(
        attempt, config, email_key="FROM_EMAIL", name_key="FROM_NAME"
    )
    content = attempt.content
    cc, bcc = _recipients(attempt)
    personalization: dict[str, Any] = {"to": [{"email": attempt.target}]}
    if cc:
        personalization["cc"] = [{"email": a} for a in cc]
    if bcc:
        personalization["bcc"] = [{"email": a} for a in bcc]
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": {"email": address, **({"name": name} if name else {})},
        "subject": content.get("subject") or "",
        "content": [
            {"type": "text/plain", "value": content.get("text") or " "},
            *([{"type": "text/html", "value": content["html"]}] if content.get("html") else []),
        ],
        "headers": {"Message-ID": attempt.message_id},
    }
    if content.get("replyTo"):
        body["reply_to"] = {"email": content["replyTo"]}
    if content.get("attachments"):
        body["attachments"] = [
            {
                "content": a["content"],
                "filename": a["name"],
                "type": a["contentType"],
                "disposition": "attachment",
            }
            for a in content["attachments"]
        ]
    body.update(passthrough(attempt.override))
    answer = await _post(
        attempt,
        attempt.settings.sendgrid_base_url.rstrip("/") + "/v3/mail/send",
        content=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {config.get('API_KEY', '')}",
            "Content-Type": "application/json",
        },
    )
    return _classified(answer)


def _mailgun_base(attempt: Attempt, config: dict[str, Any]) -> str:
    if attempt.settings.mailgun_base_url:
        return attempt.settings.mailgun_base_url.rstrip("/")
    eu = str(config.get("region") or "").upper() == "EU"
    return "https://api.eu.mailgun.net" if eu else "https://api.mailgun.net"


async def mailgun(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    address, name = email_message.sender(
        attempt, config, email_key="fromEmail", name_key="fromName"
    )
    content = attempt.content
    cc, bcc = _recipients(attempt)
    sender = f"{name} <{address}>" if name else address
    form: dict[str, Any] = {
        "from": sender,
        "to": attempt.target,
        "subject": content.get("subject") or "",
        "text": content.get("text") or "",
        "h:Message-Id": attempt.message_id,
    }
    if content.get("html"):
        form["html"] = content["html"]
    if cc:
        form["cc"] = ", ".join(cc)
    if bcc:
        form["bcc"] = ", ".join(bcc)
    if content.get("replyTo"):
        form["h:Reply-To"] = content["replyTo"]
    form.update({k: v for k, v in passthrough(attempt.override).items() if isinstance(v, str)})
    files = [
        ("attachment", (a["name"], base64.b64decode(a["content"]), a["contentType"]))
        for a in content.get("attachments") or []
    ]
    url = f"{_mailgun_base(attempt, config)}/v3/{config.get('domain', '')}/messages"
    answer = await _post(
        attempt, url, data=form, files=files or None, auth=("api", str(config.get("apiKey", "")))
    )
    return _classified(answer, message_id_key="id")


async def postmark(attempt: Attempt) -> Outcome:
    config = provider_config(attempt.config, attempt.override)
    address, name = email_message.sender(
        attempt, config, email_key="FROM_EMAIL", name_key="FROM_NAME"
    )
    content = attempt.content
    cc, bcc = _recipients(attempt)
    body: dict[str, Any] = {
        "From": f"{name} <{address}>" if name else address,
        "To": attempt.target,
        "Subject": content.get("subject") or "",
        "TextBody": content.get("text") or "",
        "Headers": [{"Name": "Message-ID", "Value": attempt.message_id}],
        "MessageStream": "outbound",
    }
    if content.get("html"):
        body["HtmlBody"] = content["html"]
    if cc:
        body["Cc"] = ", ".join(cc)
    if bcc:
        body["Bcc"] = ", ".join(bcc)
    if content.get("replyTo"):
        body["ReplyTo"] = content["replyTo"]
    if content.get("attachments"):
        body["Attachments"] = [
            {"Name": a["name"], "Content": a["content"], "ContentType": a["contentType"]}
            for a in content["attachments"]
        ]
    body.update(passthrough(attempt.override))
    answer = await _post(
        attempt,
        attempt.settings.postmark_base_url.rstrip("/") + "/email",
        content=json.dumps(body).encode(),
        headers={
            "X-Postmark-Server-Token": str(config.get("SERVER_API_TOKEN", "")),
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    if isinstance(answer, Answer) and answer.status == 422:
        # Postmark: 422 with an ErrorCode; 10 = bad token (config), others are the message's.
        try:
            code = int(json.loads(answer.body).get("ErrorCode", 0))
        except (ValueError, AttributeError, TypeError):
            code = 0
        if code == 10:
            return Outcome(Result.CONFIG, f"Postmark ErrorCode 10: {answer.body[:200]}", 422)
    return _classified(answer, message_id_key="MessageID")
