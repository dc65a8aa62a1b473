"""PostgreSQL advisory locks named by text, for start-up chores several replicas race on."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def xact_lock(session: AsyncSession, name: str) -> None:
    """Wait for the lock `name`; it is released when the session's transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
