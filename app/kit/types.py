"""Shared field types."""

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

# A BIGINT key: bounded here so an oversized number is a 400, not a database error.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]

# A user, topic, category or key identifier as Engagespot bounds it.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]


def _true_false_or_bit(value: object) -> object:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise PydanticCustomError("bool_type", "Input should be a valid boolean")


# A JSON true/false, or 0/1 where Engagespot's own docs write `"enabled": 1`; strings such as
# "off" are refused (pydantic's lax bool would read "off" as false).
Flag = Annotated[bool, BeforeValidator(_true_false_or_bit)]

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
