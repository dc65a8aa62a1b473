"""`smtp_email`: SMTP submission with aiosmtplib, driven step by step.

Engagespot's flags are nodemailer's: SECURE = TLS from the first byte (port 465); REQUIRE_TLS =
insist on STARTTLS; otherwise STARTTLS when the server offers it. AUTH is never sent over a
connection without TLS unless ALLOW_PLAINTEXT_AUTH is true. The conversation is driven by
hand so the delivery can be marked just before DATA: a crash before that mark sent nothing."""

import asyncio
import contextlib
import ssl
from typing import Any

import aiosmtplib

from app.delivery.channels import email_message
from app.delivery.channels.base import Attempt, passthrough, provider_config
from app.delivery.http import tls_context
from app.delivery.outcome import Outcome, Result

_FLAT = {
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SECURE",
    "REQUIRE_TLS",
    "FROM_NAME",
    "FROM_EMAIL",
}


def _config(attempt: Attempt) -> tuple[dict[str, Any], dict[str, Any]]:
    # Engagespot's example puts SMTP keys flat in `override.smtp_email`; `_config` works too.
    flat = {k: v for k, v in attempt.override.items() if k in _FLAT}
    rest = {k: v for k, v in passthrough(attempt.override).items() if k not in _FLAT}
    config = provider_config({**attempt.config, **flat}, attempt.override)
    return config, rest


def _truthy(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"SMTP {exc.code}: {exc.message}"[:500]


async def send(attempt: Attempt) -> Outcome:
    config, override = _config(attempt)
    host = str(config.get("SMTP_HOST") or "")
    if not host:
        return Outcome(Result.CONFIG, "SMTP_HOST is not set")
    secure = _truthy(config.get("SECURE"))
    require_tls = _truthy(config.get("REQUIRE_TLS"))
    port = int(config.get("SMTP_PORT") or (465 if secure else 587))
    from_address, from_name = email_message.sender(
        attempt, config, email_key="FROM_EMAIL", name_key="FROM_NAME"
    )
    if not from_address:
        return Outcome(Result.CONFIG, "FROM_EMAIL is not set")
    from_address = str(override.get("FROM_EMAIL") or from_address)
    from_name = str(override.get("FROM_NAME") or from_name or "") or None
    message = email_message.build(
        attempt, from_address=from_address, from_name=from_name, override=override
    )
    recipients = email_message.envelope(attempt)
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        use_tls=secure,
        start_tls=False,
        tls_context=tls_context(),
        timeout=attempt.settings.delivery_smtp_timeout,
        local_hostname=from_address.rsplit("@", 1)[-1] or "localhost",
    )
    try:
        async with asyncio.timeout(attempt.settings.delivery_smtp_timeout * 2):
            return await _converse(
                client,
                attempt,
                config,
                message.as_bytes(),
                from_address,
                recipients,
                secure=secure,
                require_tls=require_tls,
            )
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Outcome(Result.CONFIG, _reply(exc), exc.code)
    except aiosmtplib.SMTPConnectResponseError as exc:
        return Outcome(
            Result.UNREACHABLE if exc.code < 500 else Result.CONFIG, _reply(exc), exc.code
        )
    except aiosmtplib.SMTPResponseException as exc:
        result = Result.TRANSIENT if 400 <= exc.code < 500 else Result.PERMANENT
        if isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code >= 500:
            result = Result.CONFIG  # the relay will not take this sender: the provider's fault
        return Outcome(result, _reply(exc), exc.code)
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect to {host}:{port}: {exc}")
    except ssl.SSLError as exc:
        return Outcome(Result.CONFIG, f"TLS with {host}:{port} failed: {exc}")
    except (aiosmtplib.SMTPException, TimeoutError) as exc:
        return Outcome(Result.TRANSIENT, f"SMTP: {exc or type(exc).__name__}")
    finally:
        client.close()


async def _converse(
    client: aiosmtplib.SMTP,
    attempt: Attempt,
    config: dict[str, Any],
    message: bytes,
    from_address: str,
    recipients: list[str],
    *,
    secure: bool,
    require_tls: bool,
) -> Outcome:
    await client.connect()
    await client.ehlo()
    tls = secure
    if not secure and (require_tls or client.supports_extension("starttls")):
        if not client.supports_extension("starttls"):
            return Outcome(Result.CONFIG, "REQUIRE_TLS is set but the server offers no STARTTLS")
        await client.starttls()
        await client.ehlo()
        tls = True
    username = config.get("SMTP_USERNAME")
    if username:
        if not tls and not _truthy(config.get("ALLOW_PLAINTEXT_AUTH")):
            return Outcome(
                Result.CONFIG,
                "refusing to send SMTP AUTH without TLS (the server offers no STARTTLS; set "
                "SECURE, or ALLOW_PLAINTEXT_AUTH=true to allow it)",
            )
        await client.login(str(username), str(config.get("SMTP_PASSWORD") or ""))
    await client.mail(from_address)
    refused: list[str] = []
    for i, address in enumerate(recipients):
        try:
            await client.rcpt(address)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if i == 0:  # the user's own address: the delivery stands or falls with it
                raise
            refused.append(f"{address}: {exc.code}")
    await attempt.mark_data()
    response = await client.data(message)
    # The message is accepted; a rude goodbye changes nothing.
    with contextlib.suppress(aiosmtplib.SMTPException):
        await client.quit()
    note = f"; cc/bcc refused: {', '.join(refused)}" if refused else ""
    return Outcome(
        Result.SENT,
        error=note[2:] or None,
        status_code=response.code,
        provider_message_id=response.message[:200],
    )
