from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kit.timefmt import iso
from app.users.models import User


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"identifier": "alice", "profile": {"name": "Alice", "email": "alice@example.com"}}
            ]
        },
    )

    identifier: str = Field(min_length=1, max_length=255)
    profile: dict[str, Any] = Field(default_factory=dict)


class UserRead(BaseModel):
    identifier: str
    profile: dict[str, Any]
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, user: User) -> "UserRead":
        return cls(
            identifier=user.identifier,
            profile=user.profile,
            createdAt=iso(user.created_at),
            updatedAt=iso(user.updated_at),
        )


class Message(BaseModel):
    message: str
