from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Identity, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class App(Base):
    __tablename__ = "apps"
    # The plaintext secrets below are plain attributes, not columns.
    __allow_unmapped__ = True

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The columns hold the secrets sealed (app/apps/sealing.py); `api_secret` and
    # `previous_api_secret` below hold them opened, in memory only (sealing.opened).
    sealed_api_secret: Mapped[str] = mapped_column("api_secret", Text)
    # The secret before the last rotation, accepted until `previous_secret_expires_at`.
    sealed_previous_api_secret: Mapped[str | None] = mapped_column("previous_api_secret", Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    secure_mode: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    hmac_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    signing_public_key: Mapped[str | None] = mapped_column(Text)
    vapid_public_key: Mapped[str] = mapped_column(Text)
    sealed_vapid_private_key: Mapped[str] = mapped_column("vapid_private_key", Text)
    # Address keys of profiles (email, webhookUrl, chat URLs…) writable only with the secret.
    addresses_from_backend_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    channels: Mapped[list[Any]] = mapped_column(
        JSONB, server_default=text("""'["inApp"]'::jsonb""")
    )
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    api_secret: str
    previous_api_secret: str | None
