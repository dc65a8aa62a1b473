"""SQL for the stored admin token."""

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AdminTokenRecord


async def admin_token_sha256(session: AsyncSession) -> str | None:
    return await session.scalar(select(AdminTokenRecord.token_sha256))


async def claim_admin_token(session: AsyncSession, *, token_sha256: str) -> bool:
    """Store the digest unless another replica stored one first; True when this one won."""
    won = await session.scalar(
        insert(AdminTokenRecord)
        .values(id=1, token_sha256=token_sha256)
        .on_conflict_do_nothing(index_elements=[AdminTokenRecord.id])
        .returning(AdminTokenRecord.id)
    )
    return won is not None
