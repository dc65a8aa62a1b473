"""Rows of a given age, written with SQL (committed) on the retention tests' database."""

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.apps import service as apps_service
from tests.factories import TEST_KEYRING

DAY = timedelta(days=1)


async def app_with_users(
    maker: async_sessionmaker[AsyncSession], users: int
) -> tuple[int, list[int]]:
    async with maker.begin() as session:
        app = await apps_service.create(session, TEST_KEYRING, name="retention")
        result = await session.execute(
            text(
                "INSERT INTO users (app_id, identifier) "
                "SELECT :app, 'u' || g FROM generate_series(1, :n) g RETURNING id"
            ),
            {"app": app.id, "n": users},
        )
        return app.id, sorted(i for (i,) in result)


async def request(
    engine: AsyncEngine, app_id: int, *, age: timedelta, status: str = "done"
) -> uuid.UUID:
    request_id = uuid.uuid4()
    await _run(
        engine,
        "INSERT INTO notification_requests (id, app_id, payload, status, created_at) "
        "VALUES (:id, :app, CAST(:payload AS jsonb), :status, now() - CAST(:age AS interval))",
        payload='{"notification": {"title": "t"}}',
        id=request_id,
        app=app_id,
        status=status,
        age=age,
    )
    return request_id


async def inbox_rows(
    engine: AsyncEngine, app_id: int, request_id: uuid.UUID, users: list[int], *, age: timedelta
) -> set[int]:
    return set(
        await _ids(
            engine,
            "INSERT INTO notifications (app_id, user_id, request_id, title, created_at) "
            "SELECT :app, u, :request, 'hello', now() - CAST(:age AS interval) "
            "FROM unnest(CAST(:users AS bigint[])) u "
            "RETURNING id",
            app=app_id,
            request=request_id,
            users=users,
            age=age,
        )
    )


async def sent(
    engine: AsyncEngine, app_id: int, users: list[int], *, age: timedelta
) -> tuple[uuid.UUID, set[int]]:
    """A finished send `age` old and its inbox row for each of `users`, as old as it."""
    request_id = await request(engine, app_id, age=age)
    return request_id, await inbox_rows(engine, app_id, request_id, users, age=age)


async def idempotency_key(engine: AsyncEngine, app_id: int, key: str, *, age: timedelta) -> None:
    await _run(
        engine,
        "INSERT INTO idempotency_keys (app_id, key, fingerprint, created_at) "
        "VALUES (:app, :key, 'f', now() - CAST(:age AS interval))",
        app=app_id,
        key=key,
        age=age,
    )


async def queued_job(engine: AsyncEngine) -> int:
    [job] = await _ids(
        engine,
        "INSERT INTO pgqueuer (priority, entrypoint, status) VALUES (0, 'fan_out', 'queued') "
        "RETURNING id",
    )
    return int(job)


async def log_row(engine: AsyncEngine, job_id: int, *, age: timedelta) -> int:
    [row] = await _ids(
        engine,
        "INSERT INTO pgqueuer_log (job_id, status, priority, entrypoint, created) "
        "VALUES (:job, 'successful', 0, 'fan_out', now() - CAST(:age AS interval)) RETURNING id",
        job=job_id,
        age=age,
    )
    return int(row)


async def statistic(engine: AsyncEngine, *, age: timedelta) -> int:
    [row] = await _ids(
        engine,
        "INSERT INTO pgqueuer_statistics (count, priority, status, entrypoint, created) "
        "VALUES (1, 0, 'successful', 'fan_out', now() - CAST(:age AS interval)) RETURNING id",
        age=age,
    )
    return int(row)


async def present(engine: AsyncEngine, table: str, column: str, ids: Iterable[Any]) -> set[Any]:
    """Which of `ids` are still in `table`."""
    wanted = list(ids)
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT {column} FROM {table} WHERE {column} = ANY(:ids)"), {"ids": wanted}
        )
        return {i for (i,) in result}


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def _run(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _ids(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        return [i for (i,) in await conn.execute(text(sql), params)]
