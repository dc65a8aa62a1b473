"""Timestamps as the Engagespot API writes them."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """Render `2024-01-28T10:37:18.302Z` (millisecond precision, Z suffix), as the SDKs expect."""
    if value is None:
        return None
    # isoformat is C; strftime plus formatting took twice as long, 45 times per inbox page.
    # asyncpg already hands timestamptz over in UTC: converting it again was a fifth of this.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"
