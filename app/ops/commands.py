"""What `herald apps …` and `herald requests …` do, each in one transaction."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.apps import repository as apps_repository
from app.apps import sealing
from app.apps import service as apps_service
from app.apps.models import App
from app.db import make_engine, make_sessionmaker
from app.keyring import Keyring
from app.ops.problems import CliError
from app.sends import status as send_status
from app.sends.schemas import RequestStatus

T = TypeVar("T")


def _in_transaction(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = make_engine(url, pool_size=1)
        try:
            async with make_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def list_apps(url: str, keyring: Keyring) -> list[App]:
    async def work(session: AsyncSession) -> list[App]:
        return await apps_service.all_opened(session, keyring)

    return _in_transaction(url, work)


def rotate_secret(url: str, keyring: Keyring, app_id: int, *, grace: timedelta) -> App:
    async def work(session: AsyncSession) -> App:
        app = await apps_repository.by_id(session, app_id) if 0 < app_id < 2**63 else None
        if app is None:
            raise CliError(f"no app with id {app_id} (see `herald apps list`)")
        sealing.opened(keyring, app)
        return await apps_service.rotate_secret(session, keyring, app=app, grace=grace)

    return _in_transaction(url, work)


def request_status(url: str, app_id: int, request_id: uuid.UUID) -> RequestStatus:
    async def work(session: AsyncSession) -> RequestStatus:
        found = await send_status.of_request(session, app_id=app_id, request_id=request_id)
        if found is None:
            raise CliError(f"app {app_id} has no request {request_id}")
        return found

    return _in_transaction(url, work)
