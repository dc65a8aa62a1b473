"""The providers Herald speaks, with Engagespot's ids and config keys.

Config values arrive as strings or numbers (`"587"` or `587`); each key has a kind that
normalises it. Secret keys are sealed at rest and masked in every answer."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.delivery import credentials
from app.errors import BadRequest

# `json`: an object, given as one or as its text (a service-account file), stored as text.
Kind = Literal["text", "int", "bool", "url", "json"]
EMAIL, WEBHOOK, SLACK, DISCORD, TEAMS = "email", "webhook", "slack", "discord", "chat"
WEB_PUSH, MOBILE_PUSH, SMS, WHATSAPP = "webPush", "mobilePush", "sms", "whatsapp"
# Channels where a second copy costs the user (or the customer) something: after the message
# was handed over, an attempt with no answer is `unknown`, never sent again.
AT_MOST_ONCE = frozenset({EMAIL, SMS, WHATSAPP, MOBILE_PUSH, WEB_PUSH})
# mobilePush tokens live in the profile under one key per provider: `fcm.tokens`, ….
TOKEN_KEYS = {"fcm": "fcm", "apns": "apns", "expo": "expo"}
MASK = "********"
# Web push needs no configuration: the app's VAPID pair signs, HERALD_VAPID_SUBJECT names
# the sender. An app has at most one `default_webpush` row, made on first use if absent.
DEFAULT_WEBPUSH = "default_webpush"
WEB_PUSH_MAX_TTL = 2_419_200  # 28 days: what FCM, Mozilla and Apple keep at most
WEB_PUSH_URGENCIES = ("very-low", "low", "normal", "high")


@dataclass(frozen=True)
class Key:
    name: str
    kind: Kind = "text"
    secret: bool = False
    required: bool = False
    # An "int" key's upper bound (default 65535, a port); a "text" key's allowed values.
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    # Raises ValueError (saying what is wrong, never quoting the value) for an unusable value.
    check: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Spec:
    provider: str
    channel: str
    keys: tuple[Key, ...]
    # The config key holding a destination URL for the whole app (chat, webhook).
    url_key: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    # Groups of keys of which at least one must be set (a sender number or a service).
    one_of: tuple[tuple[str, ...], ...] = ()

    def key(self, name: str) -> Key | None:
        name = self.aliases.get(name, name)
        return next((k for k in self.keys if k.name == name), None)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(k.name for k in self.keys if k.secret)


_URL = Key("WEBHOOK_URL", "url", secret=True)

SPECS: dict[str, Spec] = {
    s.provider: s
    for s in (
        Spec(
            "smtp_email",
            EMAIL,
            (
                Key("SMTP_HOST", required=True),
                Key("SMTP_PORT", "int"),
                Key("SMTP_USERNAME"),
                Key("SMTP_PASSWORD", secret=True),
                Key("SECURE", "bool"),
                Key("REQUIRE_TLS", "bool"),
                # Herald's addition: AUTH over a connection without TLS only when this is true.
                Key("ALLOW_PLAINTEXT_AUTH", "bool"),
                Key("FROM_NAME"),
                Key("FROM_EMAIL", required=True),
            ),
        ),
        Spec(
            "sendgrid_email",
            EMAIL,
            (
                Key("API_KEY", secret=True, required=True),
                Key("FROM_NAME"),
                Key("FROM_EMAIL", required=True),
            ),
        ),
        Spec(
            "mailgun",
            EMAIL,
            (
                Key("apiKey", secret=True, required=True),
                Key("domain", required=True),
                Key("region"),
                Key("fromEmail", required=True),
                Key("fromName"),
            ),
        ),
        Spec(
            "postmark_email",
            EMAIL,
            (
                Key("SERVER_API_TOKEN", secret=True, required=True),
                Key("FROM_EMAIL", required=True),
                Key("FROM_NAME"),
            ),
        ),
        Spec(
            "default_webhook",
            WEBHOOK,
            (Key("SIGNING_KEY", secret=True), _URL),
            url_key="WEBHOOK_URL",
            aliases={"signingKey": "SIGNING_KEY", "webhookUrl": "WEBHOOK_URL"},
        ),
        Spec("slack", SLACK, (_URL,), url_key="WEBHOOK_URL", aliases={"webhookUrl": "WEBHOOK_URL"}),
        Spec(
            "discord",
            DISCORD,
            (_URL, Key("USERNAME"), Key("AVATAR_URL", "url")),
            url_key="WEBHOOK_URL",
            aliases={"webhookUrl": "WEBHOOK_URL"},
        ),
        Spec(
            "ms_teams", TEAMS, (_URL,), url_key="WEBHOOK_URL", aliases={"webhookUrl": "WEBHOOK_URL"}
        ),
        # -- SMS and WhatsApp ------------------------------------------------------------
        *(
            Spec(
                provider,
                channel,
                (
                    Key("TWILIO_ACCOUNT_SID", required=True),
                    Key("TWILIO_AUTH_TOKEN", secret=True, required=True),
                    Key("TWILIO_FROM_NUMBER"),
                    # Herald's addition: send through a Messaging Service instead of a number.
                    Key("MESSAGING_SERVICE_SID"),
                ),
                one_of=(("TWILIO_FROM_NUMBER", "MESSAGING_SERVICE_SID"),),
            )
            for provider, channel in (("twilio_sms", SMS), ("twilio_whatsapp", WHATSAPP))
        ),
        Spec(
            "plivo_sms",
            SMS,
            (
                Key("AUTH_ID", required=True),
                Key("AUTH_TOKEN", secret=True, required=True),
                Key("SENDER", required=True),
            ),
        ),
        Spec(
            "textlocal_sms",
            SMS,
            (Key("API_KEY", secret=True, required=True), Key("SENDER", required=True)),
        ),
        # -- web push ------------------------------------------------------------------
        Spec(
            "default_webpush",
            WEB_PUSH,
            (
                Key("TTL", "int", maximum=WEB_PUSH_MAX_TTL),
                Key("URGENCY", choices=WEB_PUSH_URGENCIES),
            ),
        ),
    )
}
# The providers whose delivery callbacks Herald verifies (POST /v3/providers/{id}/callback).
CALLBACK_PROVIDERS = frozenset({"twilio_sms", "twilio_whatsapp"})

# Mobile push: tokens from `fcm.tokens`, `apns.tokens`, `expo.tokens` (see addresses.py).
SPECS.update(
    {
        s.provider: s
        for s in (
            Spec(
                "fcm",
                MOBILE_PUSH,
                (
                    Key(
                        "SERVICE_ACCOUNT",
                        "json",
                        secret=True,
                        required=True,
                        check=credentials.check_service_account,
                    ),
                ),
            ),
            # No Engagespot provider id for APNs: Herald's, named after Apple's terms.
            Spec(
                "apns",
                MOBILE_PUSH,
                (
                    Key("TEAM_ID", required=True),
                    Key("KEY_ID", required=True),
                    Key(
                        "PRIVATE_KEY", secret=True, required=True, check=credentials.check_apns_key
                    ),
                    Key("BUNDLE_ID", required=True),
                    # api.sandbox.push.apple.com for development builds' tokens.
                    Key("SANDBOX", "bool"),
                ),
            ),
            Spec("expo", MOBILE_PUSH, (Key("ACCESS_TOKEN", secret=True),)),
        )
    }
)
# Providers whose deliveries go out in batches (messages per request): one queue job takes
# up to this many deliveries of a send (engine.run_batch).
BATCH_SIZES = {"expo": 100}

CHANNELS_WITH_PROVIDERS = frozenset(s.channel for s in SPECS.values())


def spec_for(channel: str, provider: str) -> Spec:
    spec = SPECS.get(provider)
    if spec is None:
        known = ", ".join(sorted(p for p, s in SPECS.items() if s.channel == channel))
        raise BadRequest(f"unknown provider {provider!r} (for {channel}: {known or 'none'})")
    if spec.channel != channel:
        raise BadRequest(f"provider {provider} serves the {spec.channel} channel, not {channel}")
    return spec


def _value(key: Key, raw: object) -> str | int | bool:
    where = f"config.{key.name}"
    if key.kind == "json":
        return _json(key, raw)
    if isinstance(raw, bool):
        if key.kind == "bool":
            return raw
        raise BadRequest(f"{where} must be a string or a number")
    if not isinstance(raw, str | int | float):
        raise BadRequest(f"{where} must be a string or a number")
    text = str(raw).strip()
    if len(text) > 4096:
        raise BadRequest(f"{where} must be at most 4096 characters")
    if key.kind == "int":
        try:
            number = int(float(text)) if text else 0
        except ValueError:
            raise BadRequest(f"{where} must be a whole number") from None
        top = key.maximum or 65535
        if not 0 < number <= top:
            raise BadRequest(f"{where} must be between 1 and {top}")
        return number
    if key.kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise BadRequest(f"{where} must be true or false")
    if key.kind == "url" and text and not text.startswith(("https://", "http://")):
        raise BadRequest(f"{where} must be an http(s) URL")
    if key.choices and text not in key.choices:
        raise BadRequest(f"{where} must be one of {', '.join(key.choices)}")
    _check(key, text)
    return text


def _check(key: Key, text: str) -> None:
    if key.check is not None and text:
        try:
            key.check(text)
        except ValueError as exc:
            raise BadRequest(f"config.{key.name} {exc}") from None


def _json(key: Key, raw: object) -> str:
    where = f"config.{key.name}"
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise BadRequest(f"{where} must be a JSON object") from None
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a JSON object")
    text = json.dumps(raw, separators=(",", ":")) if raw else ""
    if len(text) > 16_384:
        raise BadRequest(f"{where} must be at most 16384 characters")
    _check(key, text)
    return text


def normalise(spec: Spec, config: dict[str, Any]) -> dict[str, str | int | bool]:
    """Validate and normalise config keys; unknown keys are refused (typos fail loudly)."""
    out: dict[str, str | int | bool] = {}
    for name, raw in config.items():
        key = spec.key(name)
        if key is None:
            allowed = ", ".join(k.name for k in spec.keys)
            raise BadRequest(f"config.{name} is not a {spec.provider} key (known: {allowed})")
        if raw is None:
            continue
        out[key.name] = _value(key, raw)
    return out


def missing(spec: Spec, config: dict[str, Any]) -> list[str]:
    gaps = [k.name for k in spec.keys if k.required and config.get(k.name) in (None, "")]
    gaps += [
        " or ".join(group)
        for group in spec.one_of
        if all(config.get(name) in (None, "") for name in group)
    ]
    return gaps


def masked(spec: Spec, config: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (MASK if k in spec.secret_names and v not in (None, "") else v)
        for k, v in config.items()
    }
