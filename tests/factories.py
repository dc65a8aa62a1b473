"""Small typed factories and header builders."""

import base64
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import service as apps_service
from app.apps.models import App


@dataclass(frozen=True)
class Creds:
    id: int
    api_key: str
    api_secret: str

    def backend(self) -> dict[str, str]:
        return {"X-ENGAGESPOT-API-KEY": self.api_key, "X-ENGAGESPOT-API-SECRET": self.api_secret}

    def user(self, identifier: str) -> dict[str, str]:
        return {"X-ENGAGESPOT-API-KEY": self.api_key, "X-ENGAGESPOT-USER-ID": identifier}

    def signed(self, identifier: str) -> dict[str, str]:
        digest = hmac.new(self.api_secret.encode(), identifier.encode(), hashlib.sha256).digest()
        return {
            **self.user(identifier),
            "X-ENGAGESPOT-USER-SIGNATURE": base64.b64encode(digest).decode(),
        }


async def make_app(session: AsyncSession, name: str = "test") -> tuple[App, Creds]:
    app = await apps_service.create(session, name=name)
    return app, Creds(app.id, app.api_key, app.api_secret)


def send_body(
    *recipients: str | dict[str, object], title: str = "Hello", **extra: object
) -> dict[str, object]:
    notification: dict[str, object] = {"title": title}
    notification.update(extra.pop("notification", {}) or {})  # type: ignore[call-overload]
    return {"notification": notification, "sendTo": {"recipients": list(recipients)}, **extra}
