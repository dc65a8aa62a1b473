"""Import notification history (from the Engagespot cloud, another system, or a bench) in bulk.

Input is JSON lines, one inbox item per line:

    {"user": "ann", "title": "Order shipped", "message": "…", "createdAt": "2024-01-28T10:37:18Z",
     "seenAt": null, "clickedAt": null, "category": "orders", "data": {"orderId": 7}}

`user` (or `userIdentifier`) and `title` are required. Optional: `message`, `icon`, `url`,
`data` (an object), `blocks` (a list), `category` (an identifier; created if new),
`tenantIdentifier`, `state`, `createdAt` (default: now), `seenAt`, `clickedAt`,
`interactedAt`, and `requestId` (a UUID: lines sharing one become one send; each other line
is a send of its own). Unknown users are created.

Rows go in with COPY, in batches, in one transaction: a bad line stops the import with its
line number and nothing is kept. The users' inbox counters are kept by the same trigger as
any other write; imported history sends no realtime events."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.categories import repository as categories_repository
from app.inbox import repository as inbox_repository
from app.kit.timefmt import utcnow
from app.sends import repository
from app.users import repository as users_repository

BATCH = 20_000
_TEXT = ("message", "icon", "url", "tenantIdentifier", "state")
_TIMES = ("createdAt", "seenAt", "clickedAt", "interactedAt")


class BadLine(ValueError):
    """A line that cannot be imported; the message names it."""


@dataclass
class Imported:
    rows: int = 0
    users: set[str] = field(default_factory=set)
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Line:
    user: str
    request_id: uuid.UUID | None
    title: str
    texts: tuple[str | None, ...]  # _TEXT, in order
    data: str | None
    blocks: str | None
    category: str | None
    times: tuple[datetime | None, ...]  # _TIMES, in order


def parse(number: int, raw: str) -> _Line:
    """Check one line; raise BadLine naming it when it is not an inbox item."""
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadLine(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise BadLine(f"line {number}: not a JSON object")
    user = item.get("user", item.get("userIdentifier"))
    if not isinstance(user, str) or not user or len(user) > 255:
        raise BadLine(f"line {number}: `user` must be an identifier of 1 to 255 characters")
    title = item.get("title")
    if not isinstance(title, str) or not title:
        raise BadLine(f"line {number}: `title` is required")
    texts = tuple(_text(number, item, key) for key in _TEXT)
    data = item.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadLine(f"line {number}: `data` must be an object")
    blocks = item.get("blocks")
    if blocks is not None and not isinstance(blocks, list):
        raise BadLine(f"line {number}: `blocks` must be a list")
    category = _text(number, item, "category")
    times = tuple(_time(number, item, key) for key in _TIMES)
    request_id = None
    if item.get("requestId") is not None:
        try:
            request_id = uuid.UUID(str(item["requestId"]))
        except ValueError:
            raise BadLine(f"line {number}: `requestId` must be a UUID") from None
    if "\\u0000" in raw or "\x00" in raw:
        raise BadLine(f"line {number}: strings must not contain NUL characters")
    return _Line(
        user=user,
        request_id=request_id,
        title=title,
        texts=texts,
        data=json.dumps(data) if data else None,
        blocks=json.dumps(blocks) if blocks else None,
        category=category or None,
        times=times,
    )


def _text(number: int, item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise BadLine(f"line {number}: `{key}` must be a string")
    if key in ("tenantIdentifier", "category") and value is not None and len(value) > 255:
        raise BadLine(f"line {number}: `{key}` is longer than 255 characters")
    if key == "state" and value is not None and len(value) > 64:
        raise BadLine(f"line {number}: `state` is longer than 64 characters")
    return value


def _time(number: int, item: dict[str, Any], key: str) -> datetime | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadLine(f"line {number}: `{key}` must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadLine(f"line {number}: `{key}` is not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def load(
    session: AsyncSession,
    *,
    app_id: int,
    lines: Iterable[str],
    progress: Callable[[Imported], None] | None = None,
    batch: int = BATCH,
) -> Imported:
    """Import every line into the app, in the caller's transaction; return what went in.

    The next batch is read and checked on a worker thread while PostgreSQL takes the last
    one, so the two cores work at once."""
    done = Imported()
    started = time.perf_counter()
    categories: dict[str, int] = {}
    source = iter(enumerate(lines, start=1))
    writing: asyncio.Task[None] | None = None
    try:
        while True:
            parsed = await asyncio.to_thread(_next_batch, source, batch)
            if writing is not None:
                await writing
                done.seconds = time.perf_counter() - started
                if progress is not None:
                    progress(done)
            if not parsed:
                break
            writing = asyncio.create_task(_write(session, app_id, parsed, categories, done))
    except BaseException:
        # Let a COPY in flight finish before the caller rolls the transaction back.
        if writing is not None and not writing.done():
            await asyncio.wait([writing])
        raise
    done.seconds = time.perf_counter() - started
    return done


def _next_batch(source: Iterator[tuple[int, str]], size: int) -> list[_Line]:
    out: list[_Line] = []
    for number, raw in source:
        if raw.strip():
            out.append(parse(number, raw))
            if len(out) >= size:
                break
    return out


async def _write(
    session: AsyncSession,
    app_id: int,
    lines: list[_Line],
    categories: dict[str, int],
    done: Imported,
) -> None:
    if not lines:
        return
    users = await users_repository.ensure(
        session, app_id, list(dict.fromkeys(x.user for x in lines))
    )
    for identifier in {x.category for x in lines if x.category} - categories.keys():
        categories[identifier] = (
            await categories_repository.ensure(session, app_id, identifier)
        ).id
    now = utcnow()
    requests: dict[uuid.UUID, list[Any]] = {}
    records = []
    for line in lines:
        created = line.times[0] or now
        request_id = line.request_id or uuid.uuid4()
        entry = requests.setdefault(request_id, [request_id, 0, created])
        entry[1] += 1
        message, icon, url, tenant, state = line.texts
        records.append(
            (
                app_id,
                users[line.user],
                request_id,
                line.title,
                message,
                icon,
                url,
                line.data,
                line.blocks,
                categories[line.category] if line.category else None,
                tenant or None,
                state,
                created,
                *line.times[1:],
            )
        )
    # A request id that an earlier batch (or an earlier import) wrote is not written again;
    # one of another app is refused.
    known = await repository.apps_of(session, list(requests))
    if foreign := [str(r) for r, owner in known.items() if owner != app_id]:
        raise BadLine(f"requestId {foreign[0]} belongs to another app")
    await repository.copy_imported(
        session,
        app_id=app_id,
        requests=[(r, n, at) for r, n, at in requests.values() if r not in known],
    )
    await inbox_repository.copy_rows(session, records)
    done.rows += len(records)
    done.users.update(users)
