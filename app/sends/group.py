"""Group commit for plain sends: concurrent sends written by one transaction.

A plain send (inbox only, a few explicit recipients, no topic, category, schedule, profile
attributes or Idempotency-Key; see `accept.plain`) needs no reads before its writes, so
sends that arrive while a group is being written wait for it and are then written together:
their users, requests and inbox rows in one call of a function (migration 0017) that commits
on return: one round trip. The group's realtime events then go out in a NOTIFY of their
own, so that no commit waits behind PostgreSQL's one NOTIFY lock for another process's WAL
flush, and each send is answered after both: never before the commit that holds its rows.

When this thread is short of CPU (it shares the cores with PostgreSQL and other processes),
a group is not started at once: sends already on their way in join it first, while each
turn of the event loop still brings one. A group then costs less CPU per send, and CPU is
what is short; with a core to spare, the next group starts at once and overlaps with the
requests still being read.

A group that fails for anything but a database fault (an app deleted meanwhile, say) is
written again one send per transaction, so that only the send at fault gets the error. A
fault (the database gone or busy) is every send's: each answers 503 and may be retried."""

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db
from app.faults import fault_of
from app.inbox import events
from app.kit.cpu import Contention
from app.sends import repository

log = logging.getLogger("herald.sends")

# Sends per transaction, and inbox rows: bound a group's statements and the wait of the
# sends behind it (a group of large sends gains little from sharing a commit).
MOST = 256
MOST_ROWS = 5_000
# Gathering a group while short of CPU: it starts once this many turns of the event loop in a
# row brought no send, or after GATHER_MOST seconds. On the 2-core bench machine at 2
# processes, groups of 7 became 11 to 18 and sends/s rose by a sixth to a fifth; with 3
# turns they stayed at 7 to 9 (a request read from its socket takes turns to reach its
# group), and 4 sat at the edge of that.
QUIET_TURNS = 6
GATHER_MOST = 0.002


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
    swap it per test). `committed` hears the size of each group committed. `short_of_cpu`
    tells whether to gather a group before starting it (a `Contention` by default)."""

    def __init__(
        self,
        maker: Callable[[], async_sessionmaker[AsyncSession]],
        committed: Callable[[int], None] | None = None,
        short_of_cpu: Callable[[], bool] | None = None,
    ) -> None:
        self._maker = maker
        self._committed = committed
        self._short_of_cpu = short_of_cpu or Contention().busy
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
            if self._short_of_cpu():
                await self._gather()
            taken, rows = 0, 0
            for send, _ in self._waiting[:MOST]:
                if taken and rows + len(send.identifiers) > MOST_ROWS:
                    break
                taken += 1
                rows += len(send.identifiers)
            group, self._waiting = self._waiting[:taken], self._waiting[taken:]
            await self._run(group)

    async def _gather(self) -> None:
        """Let the sends already on their way in join the waiting ones (see the module)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_MOST
        quiet, seen = 0, len(self._waiting)
        while quiet < QUIET_TURNS and seen < MOST and loop.time() < deadline:
            await asyncio.sleep(0)
            if len(self._waiting) > seen:
                quiet, seen = 0, len(self._waiting)
            else:
                quiet += 1

    async def _run(self, group: list[tuple[Send, asyncio.Future[None]]]) -> None:
        try:
            await self._commit(group)
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

    async def _commit(self, group: list[tuple[Send, asyncio.Future[None]]]) -> None:
        """Write `group`, send its events once it is committed, then answer its sends. A
        failure after the commit (the events, the connection's return) is only logged: the
        sends are in."""
        sends: Sequence[Send] = [send for send, _ in group]
        committed = False
        try:
            async with db.autocommitting(self._maker()) as connection:
                payloads = await repository.write_group(
                    connection,
                    requests=[_request_row(s) for s in sends],
                    recipients=[
                        (s.app_id, identifier, s.request_id, *_content_row(s))
                        for s in sends
                        for identifier in s.identifiers
                    ],
                    event=("NEW_NOTIFICATION", events.PAIRS_PER_MESSAGE),
                )
                committed = True
                await events.publish_payloads(connection, payloads)
        except Exception:
            if not committed:
                raise
            log.warning(
                "sends: a group of %d sends committed, then failed; its realtime events may "
                "not have gone out",
                len(group),
                exc_info=True,
            )
        self.groups += 1
        if self._committed is not None:
            self._committed(len(group))
        _settle(group, None)


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
