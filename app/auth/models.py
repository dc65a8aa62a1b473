from datetime import datetime

from sqlalchemy import CheckConstraint, SmallInteger, String, func, text
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class AdminTokenRecord(Base):
    """The admin token every replica accepts, as a SHA-256 digest: one row at most."""

    __tablename__ = "admin_tokens"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=func.now()
    )
