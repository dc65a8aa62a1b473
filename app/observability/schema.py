"""Is the database at the schema this Herald was built for? (one half of /ready)"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from app import runtime
from app.observability import repository


@dataclass(frozen=True)
class Expected:
    heads: tuple[str, ...]
    known: frozenset[str]  # every revision of the scripts


@lru_cache
def expected(location: Path | None = None) -> Expected:
    """Read the migration scripts once per process (reading them imports each one)."""
    scripts = runtime.scripts(location)
    known = frozenset(r.revision for r in scripts.walk_revisions())
    return Expected(tuple(sorted(scripts.get_heads())), known)


async def problem(conn: AsyncConnection, want: Expected) -> str | None:
    """Say how the database's schema differs from the scripts' head; None when it matches."""
    current = tuple(await repository.schema_revisions(conn))
    if current == want.heads:
        return None
    shown = ", ".join(current) or "none (never migrated)"
    if all(r in want.known for r in current):
        advice = "run `herald migrate`"
    else:
        advice = "a newer Herald migrated it; upgrade this one"
    return f"database schema is at revision {shown}, expected {', '.join(want.heads)}: {advice}"
