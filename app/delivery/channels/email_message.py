"""The MIME message of an e-mail delivery: the same bytes on every retry."""

import base64
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from app.delivery.channels.base import Attempt


def sender(
    attempt: Attempt, config: dict[str, Any], *, email_key: str, name_key: str
) -> tuple[str, str | None]:
    content = attempt.content
    address = content.get("from") or config.get(email_key) or ""
    name = content.get("fromName") or config.get(name_key) or None
    return str(address), (str(name) if name else None)


def build(
    attempt: Attempt,
    *,
    from_address: str,
    from_name: str | None,
    override: dict[str, Any],
) -> EmailMessage:
    content = attempt.content
    message = EmailMessage()
    message["From"] = formataddr((from_name, from_address)) if from_name else from_address
    message["To"] = attempt.target or ""
    if content.get("cc"):
        message["Cc"] = ", ".join(content["cc"])
    if content.get("replyTo"):
        message["Reply-To"] = content["replyTo"]
    message["Subject"] = str(override.get("subject") or content.get("subject") or "")
    message["Message-ID"] = attempt.message_id
    message["Date"] = format_datetime(attempt.created_at)
    headers = override.get("headers")
    if isinstance(headers, dict):
        for name, value in headers.items():
            if (
                isinstance(name, str)
                and isinstance(value, str)
                and name.lower() not in ("from", "to", "cc", "bcc", "message-id", "date", "subject")
            ):
                message[name] = value
    message.set_content(str(override.get("text") or content.get("text") or ""))
    html = override.get("html") or content.get("html")
    if html:
        message.add_alternative(str(html), subtype="html")
    for item in content.get("attachments") or []:
        main, _, sub = item["contentType"].partition("/")
        message.add_attachment(
            base64.b64decode(item["content"]),
            maintype=main,
            subtype=sub or "octet-stream",
            filename=item["name"],
        )
    return message


def envelope(attempt: Attempt) -> list[str]:
    """The main recipient first, then cc and bcc (bcc only ever in the envelope)."""
    content = attempt.content
    seen: list[str] = []
    for address in [attempt.target or "", *(content.get("cc") or []), *(content.get("bcc") or [])]:
        if address and address not in seen:
            seen.append(address)
    return seen
