from typing import Annotated

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

from app.apps.models import App
from app.kit.timefmt import iso
from app.kit.types import Channel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class AppUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    secureMode: StrictBool | None = None
    hmacEnabled: StrictBool | None = None
    channels: list[Channel] | None = None


class AppRead(BaseModel):
    id: int
    name: str
    apiKey: str
    apiSecret: str
    secureMode: bool
    hmacEnabled: bool
    hasSigningKey: bool
    channels: list[str]
    vapidPublicKey: str
    createdAt: str | None

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
            vapidPublicKey=app.vapid_public_key,
            createdAt=iso(app.created_at),
        )


class SigningKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publicKey: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = None


class SigningKeyOut(BaseModel):
    publicKey: str
    privateKey: str | None = None
