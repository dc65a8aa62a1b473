"""The socket.io server: authenticates like REST, then relays committed inbox events."""

import logging
from typing import Any
from urllib.parse import parse_qs

import socketio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from app.auth.dependencies import Credentials, authenticate, present
from app.config import Settings
from app.errors import AppError
from app.notifications import events
from app.notifications import repository as notifications_repository
from app.notifications import service as notifications_service
from app.notifications.schemas import NotificationRead
from app.realtime.listener import Listener
from app.users import repository as users_repository

log = logging.getLogger("herald.realtime")
NAMESPACE = "/"


def room(user_id: int) -> str:
    return f"u:{user_id}"


class Realtime:
    def __init__(self, settings: Settings):
        origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=origins,
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self._connect)
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self.listener: Listener | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Serve socket.io at /socket.io/ and everything else with `app`, on one port."""
        wrapped: ASGIApp = socketio.ASGIApp(self.sio, other_asgi_app=app)
        return wrapped

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession], dsn: str) -> None:
        self._sessionmaker = sessionmaker
        self.listener = Listener(dsn, events.CHANNEL, self.dispatch)
        await self.listener.start()

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object) -> None:
        query = parse_qs(environ.get("QUERY_STRING", ""))

        def arg(name: str) -> str | None:
            return present(query.get(name, [None])[0])

        token = auth.get("token") if isinstance(auth, dict) else None
        creds = Credentials(
            api_key=arg("apiKey"),
            # A secret never travels in a browser's query string: sockets are for users.
            api_secret=None,
            user_id=arg("userId"),
            signature=arg("userSignature"),
            token=present(token) if isinstance(token, str) else None,
        )
        if self._sessionmaker is None:
            raise socketio.exceptions.ConnectionRefusedError("realtime is starting")
        try:
            async with self._sessionmaker.begin() as session:
                principal = await authenticate(session, creds)
                if principal.user_identifier is None:
                    raise socketio.exceptions.ConnectionRefusedError("a user is required")
                ids = await users_repository.ensure(
                    session, principal.app.id, [principal.user_identifier]
                )
        except AppError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from exc
        # No database session is held past this point: an idle socket costs only memory.
        await self.sio.enter_room(sid, room(ids[principal.user_identifier]), namespace=NAMESPACE)

    def _local(self, user_id: int) -> bool:
        rooms = self.sio.manager.rooms.get(NAMESPACE, {})
        return bool(rooms.get(room(user_id)))

    async def dispatch(self, payload: str) -> None:
        """Emit one committed event to this process's sockets of the users it names."""
        event, pairs = events.decode(payload)
        pairs = [(u, n) for u, n in pairs if self._local(u)]
        if not pairs or self._sessionmaker is None:
            return
        if event in ("NEW_NOTIFICATION", "NOTIFICATION_INTERACTED"):
            ids = [n for _, n in pairs if n is not None]
            async with self._sessionmaker() as session:
                rows = await notifications_repository.by_ids(session, ids)
            for n, category in rows:
                item = NotificationRead.of(n, category).model_dump(mode="json")
                data = {"notification": item} if event == "NEW_NOTIFICATION" else item
                await self.sio.emit(event, data, room=room(n.user_id), namespace=NAMESPACE)
        elif event == "NOTIFICATION_SEEN":
            async with self._sessionmaker() as session:
                for user_id in dict.fromkeys(u for u, _ in pairs):
                    count = await notifications_service.unread_count(session, user_id=user_id)
                    await self.sio.emit(
                        event,
                        {"unreadNotificationCount": count},
                        room=room(user_id),
                        namespace=NAMESPACE,
                    )
        elif event in ("NOTIFICATION_DELETED", "NOTIFICATION_READ"):
            for user_id, notification_id in pairs:
                await self.sio.emit(
                    event, {"id": notification_id}, room=room(user_id), namespace=NAMESPACE
                )
        else:
            for user_id in dict.fromkeys(u for u, _ in pairs):
                await self.sio.emit(event, room=room(user_id), namespace=NAMESPACE)
