from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(min_length=1, max_length=512)]
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p256dh: Key
    auth: Key


class WebPushSubscription(BaseModel):
    """The browser's PushSubscription.toJSON()."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "endpoint": "https://push.example.com/subscriptions/3f1c",
                    "expirationTime": None,
                    "keys": {
                        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u"
                        "-Ts1XbjhazAkj7I99e8QcYP7DkM",
                        "auth": "tBHItJI5svbpez7KI4CCXg",
                    },
                }
            ]
        },
    )

    endpoint: Annotated[str, StringConstraints(pattern=r"^https://", max_length=2048)]
    expirationTime: float | None = None
    keys: PushKeys = Field()
