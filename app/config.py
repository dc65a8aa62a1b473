"""Settings read from the environment (prefix HERALD_)."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://… ; when unset an embedded PostgreSQL runs in data_dir",
    )
    data_dir: Path = Path(".herald")
    admin_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    max_recipients: int = 10_000
    inline_recipients: int = 1_000
    worker: bool = True
    db_pool_size: int = 10
    log_level: str = "info"
    # Diagnosis: log every event-loop step longer than this (asyncio debug mode; slower).
    slow_callback_ms: float | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A comma-separated list reads better in an env file than JSON.
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError(
                "HERALD_DATABASE_URL must be a postgresql:// or postgresql+asyncpg:// URL"
            )
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
            raise ValueError("HERALD_ADMIN_TOKEN must be at least 16 characters")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()


# async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
async def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings_of)]
