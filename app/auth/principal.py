from dataclasses import dataclass
from enum import StrEnum

from app.apps.models import App


class Via(StrEnum):
    SECRET = "secret"  # noqa: S105  (key + secret: a backend)
    USER_ID = "user_id"  # key + user id (non-secure inbox)
    HMAC = "hmac"  # key + user id + legacy signature
    JWT = "jwt"  # RS256 user token


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: always an app, sometimes acting as one of its users."""

    app: App
    via: Via
    user_identifier: str | None = None

    @property
    def is_backend(self) -> bool:
        return self.via is Via.SECRET


@dataclass(frozen=True, slots=True)
class UserPrincipal:
    """An authenticated caller acting as one user of its app (an inbox route's caller)."""

    app: App
    via: Via
    user_identifier: str
