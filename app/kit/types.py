"""Shared field types."""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

# A BIGINT key: bounded here so an oversized number is a 400, not a database error.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]

# A user, topic, category or key identifier as Engagespot bounds it.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]

# Engagespot's channel identifiers (the SDKs' preference UI knows exactly these).
Channel = Literal[
    "inApp",
    "webPush",
    "email",
    "mobilePush",
    "sms",
    "whatsapp",
    "slack",
    "discord",
    "webhook",
    "chat",
]
