from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Identity, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[str] = mapped_column(String(64), unique=True)
    api_secret: Mapped[str] = mapped_column(String(128))
    # The secret before the last rotation, accepted until `previous_secret_expires_at`.
    previous_api_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMP(timezone=True))
    secure_mode: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    hmac_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    signing_public_key: Mapped[str | None] = mapped_column(Text)
    vapid_public_key: Mapped[str] = mapped_column(Text)
    vapid_private_key: Mapped[str] = mapped_column(Text)
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
