from typing import Annotated

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

from app.apps.models import App
from app.kit.timefmt import iso
from app.kit.types import Channel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "My app"}]})

    name: Name


class AppUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"channels": ["inApp", "webPush", "email"]}]},
    )

    name: Name | None = None
    secureMode: StrictBool | None = None
    hmacEnabled: StrictBool | None = None
    channels: list[Channel] | None = None
    addressesFromBackendOnly: bool | None = None


class AppRead(BaseModel):
    id: int
    name: str
    apiKey: str
    apiSecret: str
    secureMode: bool
    hmacEnabled: bool
    hasSigningKey: bool
    channels: list[str]
    addressesFromBackendOnly: bool
    vapidPublicKey: str
    createdAt: str | None
    # Until then the secret before the last rotation is accepted too.
    previousSecretExpiresAt: str | None = None

    @classmethod
    def of(cls, app: App) -> "AppRead":
        return cls(
            id=app.id,
            name=app.name,
            apiKey=app.api_key,
            apiSecret=app.api_secret,
            secureMode=app.secure_mode,
            hmacEnabled=app.hmac_enabled,
            hasSigningKey=app.signing_public_key is not None,
            channels=list(app.channels),
            addressesFromBackendOnly=app.addresses_from_backend_only,
            vapidPublicKey=app.vapid_public_key,
            createdAt=iso(app.created_at),
            previousSecretExpiresAt=iso(app.previous_secret_expires_at)
            if app.previous_api_secret is not None
            else None,
        )


class SigningKeyIn(BaseModel):
    # `{}` makes a key pair; send `{"publicKey": "<PEM>"}` to register your own.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})

    publicKey: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = None


class SigningKeyOut(BaseModel):
    publicKey: str
    privateKey: str | None = None
