"""Group commit for plain sends: concurrent sends written by one transaction.

A plain send (inbox only, a few explicit recipients, no topic, category, schedule, profile
attributes or Idempotency-Key; see `accept.plain`) needs no reads before its writes, so
sends that arrive while a group is being written wait for it and are then written together:
their users, requests, inbox rows and NOTIFY events in one call of a function (migration
0015) that commits on return: one round trip. Each send is answered only after the commit
that holds its rows, and its realtime events go out on that commit, as for a send of its
own.

A group that fails for anything but a database fault (an app deleted meanwhile, say) is
written again one send per transaction, so that only the send at fault gets the error. A
fault (the database gone or busy) is every send's: each answers 503 and may be retried."""

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db
from app.faults import fault_of
from app.inbox import events
from app.sends import repository

# Sends per transaction, and inbox rows: bound a group's statements and the wait of the
# sends behind it (a group of large sends gains little from sharing a commit).
MOST = 256
MOST_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class Send:
    """One send, ready to write: everything decided, nothing read from the database."""

    app_id: int
    request_id: uuid.UUID
    payload: dict[str, Any]  # the stored request body (provider overrides sealed)
    identifiers: tuple[str, ...]  # its recipients, each once
    content: dict[str, Any]  # the inbox row's content (accept.inbox_content)
    cancellation_key: str | None
    workflow_identifier: str | None
    created_at: datetime


class GroupCommit:
    """Writes the sends submitted while a group is in flight as the next group.

    `maker` is read at each group, so the session factory in use then writes it (tests
    swap it per test). `committed` hears the size of each group committed."""

    def __init__(
        self,
        maker: Callable[[], async_sessionmaker[AsyncSession]],
        committed: Callable[[int], None] | None = None,
    ) -> None:
        self._maker = maker
        self._committed = committed
        self._waiting: list[tuple[Send, asyncio.Future[None]]] = []
        self._flight: asyncio.Task[None] | None = None
        self.groups = 0  # groups committed, for tests and benches

    async def write(self, send: Send) -> None:
        """Return once `send` is committed; raise what its group (or it alone) raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((send, done))
        if self._flight is None or self._flight.done():
            # An idle writer starts at once: a lone send waits for nothing.
            self._flight = asyncio.create_task(self._drain(), name="herald-send-group")
        # Shielded: a client gone mid-write leaves the group (and this send) to commit.
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._waiting:
            taken, rows = 0, 0
            for send, _ in self._waiting[:MOST]:
                if taken and rows + len(send.identifiers) > MOST_ROWS:
                    break
                taken += 1
                rows += len(send.identifiers)
            group, self._waiting = self._waiting[:taken], self._waiting[taken:]
            await self._run(group)

    async def _run(self, group: list[tuple[Send, asyncio.Future[None]]]) -> None:
        try:
            await self._commit([send for send, _ in group])
        except Exception as exc:
            if len(group) > 1 and fault_of(exc) is None:
                for item in group:  # alone, each send's error is its own
                    await self._run([item])
                return
            _settle(group, exc)
            return
        except BaseException as exc:  # cancelled (shutdown): nobody waits forever
            _settle(group, exc)
            raise
        self.groups += 1
        if self._committed is not None:
            self._committed(len(group))
        _settle(group, None)

    async def _commit(self, sends: Sequence[Send]) -> None:
        async with db.autocommitting(self._maker()) as connection:
            await repository.write_group(
                connection,
                requests=[_request_row(s) for s in sends],
                recipients=[
                    (s.app_id, identifier, s.request_id, *_content_row(s))
                    for s in sends
                    for identifier in s.identifiers
                ],
                notify=(events.CHANNEL, "NEW_NOTIFICATION", events.PAIRS_PER_MESSAGE),
            )


def _settle(group: list[tuple[Send, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, done in group:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _request_row(send: Send) -> repository.GroupRequest:
    return repository.GroupRequest(
        id=send.request_id,
        app_id=send.app_id,
        payload=_json(send.payload),
        recipient_count=len(send.identifiers),
        cancellation_key=send.cancellation_key,
        workflow_identifier=send.workflow_identifier,
        created_at=send.created_at,
    )


def _content_row(send: Send) -> tuple[Any, ...]:
    c = send.content
    return (
        c["title"],
        c["message"],
        c["icon"],
        c["url"],
        None if c["data"] is None else _json(c["data"]),
        None if c["blocks"] is None else _json(c["blocks"]),
        c["tenant"],
        send.created_at,
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
