"""Settings read from the environment (prefix HERALD_)."""

import ipaddress
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from croniter import croniter
from fastapi import Depends, Request
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "HERALD_"
# Settings whose value is never echoed in an error message.
SECRET_SETTINGS = frozenset({"admin_token", "database_url", "redis_url"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_HTTP_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
Positive = Annotated[int, Field(ge=1)]


def parse_duration(text: str) -> timedelta:
    """`24h`, `30m`, `90s`, `2d` or plain seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError("must be a duration such as 24h, 30m, 90s, or 0 to disable")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://… ; when unset an embedded PostgreSQL runs in data_dir",
    )
    data_dir: Path = Path(".herald")
    admin_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    max_body_bytes: Positive = 1_048_576
    max_header_bytes: Positive = 16_384
    # The server: what one client may make Herald hold, and for how long (app/server.py).
    max_header_count: int = Field(default=100, gt=0)
    max_connections: int = Field(default=10_000, gt=0)
    header_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    keepalive_timeout: float = Field(default=5.0, gt=0)
    realtime_connect_timeout: float = Field(default=10.0, gt=0)
    max_recipients: Positive = 10_000
    inline_recipients: Positive = 1_000
    worker: bool = True
    # `herald serve` processes sharing the port (app/server.py).
    workers: int = Field(default=1, ge=1, le=64)
    # Each serving process on a CPU of its own (app/kit/affinity.py).
    pin_cpus: bool = False
    # Realtime events between processes through Redis instead of each one's LISTEN.
    redis_url: str | None = None
    redis_channel: str = Field(default="herald-realtime", min_length=1)
    db_pool_size: Positive = 10
    # How long a request waits for a pooled connection before it answers 503.
    db_pool_timeout: float = Field(default=30.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # How long a rotated-out API secret keeps working, so backends can roll over.
    secret_grace: timedelta = timedelta(hours=24)
    # Observability: GET /metrics, open unless a bearer token is set.
    metrics: bool = True
    metrics_token: SecretStr | None = None
    # Retention, in days; 0 keeps forever. Requests default to the inbox's retention.
    retention_days: int = Field(default=90, ge=0)
    request_retention_days: int | None = Field(default=None, ge=0)
    # When the periodic purge runs (cron, UTC); empty: never (run `herald purge` yourself).
    retention_schedule: str = "17 * * * *"

    # Channels (app/delivery): provider secrets, outbound safety, retries, vendor base URLs.
    secret_key: SecretStr | None = None
    allow_private_targets: bool = False
    delivery_retry_delays: Annotated[list[float], NoDecode] = [2, 10, 60, 300, 1800, 7200, 21600]
    delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    delivery_max_age: float = Field(default=86_400, gt=0)
    delivery_failover_after: int = Field(default=2, ge=1)
    delivery_concurrency: int = Field(default=16, ge=1, le=1000)
    delivery_http_timeout: float = Field(default=15, gt=0)
    delivery_smtp_timeout: float = Field(default=30, gt=0)
    sendgrid_base_url: str = "https://api.sendgrid.com"
    mailgun_base_url: str | None = None
    postmark_base_url: str = "https://api.postmarkapp.com"
    # Diagnosis: log every event-loop step longer than this (asyncio debug mode; slower).
    slow_callback_ms: float | None = None

    # SMS and WhatsApp (app/delivery/channels/twilio.py, sms_apis.py) and delivery callbacks.
    twilio_base_url: str = "https://api.twilio.com"
    plivo_base_url: str = "https://api.plivo.com"
    textlocal_base_url: str = "https://api.textlocal.in"
    # The URL providers reach this Herald at (https://herald.example.com): Twilio is asked to
    # report delivery to <public_url>/v3/providers/{id}/callback, and signs that URL.
    public_url: str | None = None

    # Web push: the VAPID `sub` claim (a mailto: or https: contact); unset, web push is off.
    vapid_subject: str | None = None

    # Mobile push (fcm, apns, expo). The FCM token URL is the service account's `token_uri`;
    # without an APNs base URL a provider's SANDBOX flag picks Apple's sandbox or production.
    fcm_base_url: str = "https://fcm.googleapis.com"
    apns_base_url: str | None = None
    expo_base_url: str = "https://exp.host"
    # How long after a send Expo's receipts are fetched (they appear within ~30 min).
    expo_receipt_delay: float = Field(default=900, gt=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A comma-separated list reads better in an env file than JSON.
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("secret_grace", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not value.strip().upper().startswith("P"):
            return parse_duration(value)
        return value  # a timedelta, or ISO 8601 (`PT24H`) for pydantic to read

    @field_validator("secret_grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @field_validator("delivery_retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [d.strip() for d in value.split(",") if d.strip()]
        return value

    @field_validator("delivery_retry_delays")
    @classmethod
    def _some_delays(cls, value: list[float]) -> list[float]:
        if not value or any(d < 0 for d in value):
            raise ValueError("must be comma-separated seconds, e.g. 2,10,60")
        return value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_secret_key(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                f"must be at least 32 characters (it has {len(value.get_secret_value())})"
            )
        return value

    @field_validator("public_url", mode="before")
    @classmethod
    def _empty_public_url(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("twilio_base_url", "plivo_base_url", "textlocal_base_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not _HTTP_URL.match(value):
            raise ValueError("must be an http(s) URL without a query, e.g. https://host.example")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        # Messages here never include the value: it may hold a password.
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                value = "postgresql+asyncpg://" + value[len(prefix) :]
                break
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a URL like postgresql://user:password@host:5432/database")
        try:
            url = make_url(value)
        except ValueError:
            raise ValueError("the port must be a number") from None
        except ArgumentError:
            raise ValueError(
                "is not a URL like postgresql://user:password@host:5432/database"
            ) from None
        if url.host is not None and "@" in url.host:
            raise ValueError("has an unescaped '@': write '@' in the password as %40")
        if not url.database:
            raise ValueError("names no database: add /<database> after the host")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        # Messages here never include the value: it may hold a password.
        if value == "" or value is None:
            return None
        if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a URL like redis://host:6379/0")
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token(cls, value: object) -> object:
        # `HERALD_ADMIN_TOKEN=` (as compose passes an unset variable) means "generate one".
        return None if value == "" else value

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                f"must be at least 16 characters (it has {len(value.get_secret_value())})"
            )
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_metrics_token(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("vapid_subject", mode="before")
    @classmethod
    def _empty_subject(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return None if value is None else vapid_subject(value)

    @field_validator("retention_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = value.strip()
        if value and not croniter.is_valid(value):
            raise ValueError("must be a cron expression such as '17 * * * *'")
        return value

    @field_validator("apns_base_url", mode="before")
    @classmethod
    def _empty_apns_base_url(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("fcm_base_url", "apns_base_url", "expo_base_url")
    @classmethod
    def _push_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://fcm.googleapis.com")
        return value


# Apple's push service answers 403 BadJwtToken for a subject on these (and push services
# may use the contact): a subject must reach a person.
_RESERVED_DOMAINS = (
    "localhost",
    "localdomain",
    "local",
    "test",
    "invalid",
    "example",
    "example.com",
    "example.net",
    "example.org",
)


def vapid_subject(value: str) -> str:
    """A VAPID subject: `mailto:` with an address or an `https:` URL, on a public domain."""
    value = value.strip()
    if value.lower().startswith("mailto:"):
        address = value[len("mailto:") :].split("?", 1)[0]
        host = address.rsplit("@", 1)[1] if "@" in address else ""
        if not host or not address.split("@", 1)[0]:
            raise ValueError("must be mailto:<address>, e.g. mailto:ops@yourcompany.com")
    elif value.lower().startswith("https://"):
        host = urlsplit(value).hostname or ""
        if not host:
            raise ValueError("must be an https: URL with a host, e.g. https://yourcompany.com")
    else:
        raise ValueError("must be a mailto: or https: contact, e.g. mailto:ops@yourcompany.com")
    host = host.strip("[]").rstrip(".").lower()
    try:
        local = not ipaddress.ip_address(host).is_global
    except ValueError:
        local = any(host == d or host.endswith("." + d) for d in _RESERVED_DOMAINS)
    if local:
        raise ValueError(
            f"{host} is a local or reserved domain; push services (Apple's: BadJwtToken) "
            "refuse it: use a contact on your own domain"
        )
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()


# async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
async def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings_of)]
