"""The socket.io server: authenticates like REST, then relays committed inbox events."""

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

import socketio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from app.auth.dependencies import Credentials, authenticate, present
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.errors import AppError
from app.inbox import events
from app.inbox import repository as inbox_repository
from app.inbox import service as inbox_service
from app.inbox.schemas import NotificationRead
from app.keyring import keyring
from app.realtime import payloads
from app.realtime.listener import Listener
from app.users import repository as users_repository

log = logging.getLogger("herald.realtime")
NAMESPACE = "/"
# The advisory lock whose holder relays NOTIFY to Redis (with HERALD_REDIS_URL).
RELAY_LOCK = "herald.realtime.relay"


# Events whose payload is loaded from the database before emitting.
_LOADED = ("NEW_NOTIFICATION", "NOTIFICATION_INTERACTED")


def room(user_id: int) -> str:
    return f"u:{user_id}"


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    """socket.io's server, closing engine.io sessions that never join the namespace.

    An engine.io session answers pings without ever sending socket.io's CONNECT; left alone
    it would hold its socket for as long as its client cares to (socket.io for Node has
    `connectTimeout` for this; python-socketio has no such option)."""

    def __init__(self, *, connect_timeout: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.connect_timeout = connect_timeout
        self._closing: set[asyncio.Task[None]] = set()

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> object:
        result = await super()._handle_eio_connect(eio_sid, environ)
        asyncio.get_running_loop().call_later(self.connect_timeout, self._unjoined, eio_sid)
        return result

    def _unjoined(self, eio_sid: str) -> None:
        if eio_sid not in self.environ or self.manager.sid_from_eio_sid(eio_sid, NAMESPACE):
            return
        task = asyncio.create_task(self._close_unjoined(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_unjoined(self, eio_sid: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        await self.eio.disconnect(eio_sid)
        if socket is not None:
            # engine.io only sends its close packet and waits for the client to hang up; an
            # empty packet ends the socket's writer, which closes the WebSocket itself.
            socket.queue.put_nowait(None)


class Realtime:
    def __init__(self, settings: Settings):
        self._keyring = keyring(settings)
        origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
        more: dict[str, Any] = {}
        if settings.workers > 1:
            # A long-polling session is a series of requests that must all reach the process
            # that holds it, and the processes share one port with no stickiness. Every
            # @engagespot/core (1.x to 3.x) connects with the WebSocket transport alone.
            more["transports"] = ["websocket"]
        # With Redis, one process (whichever holds the relay lock) hears NOTIFY, loads each
        # event once and publishes it; every process emits what Redis brings to its sockets.
        self.redis = settings.redis_url is not None
        if settings.redis_url is not None:
            more["client_manager"] = socketio.AsyncRedisManager(
                settings.redis_url, channel=settings.redis_channel
            )
        self.sio = _Server(
            connect_timeout=settings.realtime_connect_timeout,
            async_mode="asgi",
            cors_allowed_origins=origins,
            logger=False,
            engineio_logger=False,
            # A polling POST is a request body by another road.
            max_http_buffer_size=settings.max_body_bytes,
            **more,
        )
        self.sio.on("connect", self._connect)
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        # Dispatch reads through its own small pool so it never queues behind requests.
        self._reader_engine: AsyncEngine | None = None
        self._reader: async_sessionmaker[AsyncSession] | None = None
        self.listener: Listener | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Serve socket.io at /socket.io/ and everything else with `app`, on one port."""
        wrapped: ASGIApp = socketio.ASGIApp(self.sio, other_asgi_app=app)
        return wrapped

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession], url: str) -> None:
        """Begin relaying; `url` is the SQLAlchemy (asyncpg) URL of the database."""
        self._sessionmaker = sessionmaker
        self._reader_engine = make_engine(url, pool_size=2)
        self._reader = make_sessionmaker(self._reader_engine)
        if self.redis:
            # Subscribed now, not at the first connect: a socket that connects is at once
            # reachable from the relaying process.
            self.sio.manager_initialized = True
            self.sio.manager.initialize()
        self.listener = Listener(
            url.replace("+asyncpg", "", 1),
            events.CHANNEL,
            self.dispatch,
            exclusive=RELAY_LOCK if self.redis else None,
        )
        await self.listener.start()

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        relay: asyncio.Task[None] | None = getattr(self.sio.manager, "thread", None)
        if relay is not None:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        if self._reader_engine is not None:
            await self._reader_engine.dispose()

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
                principal = await authenticate(session, creds, self._keyring)
                identifier = principal.user_identifier
                if identifier is None:
                    raise socketio.exceptions.ConnectionRefusedError("a user is required")
                # A reconnect storm after a restart is mostly known users: read before writing.
                user_id = await users_repository.id_of(session, principal.app.id, identifier)
                if user_id is None:
                    ids = await users_repository.ensure(session, principal.app.id, [identifier])
                    user_id = ids[identifier]
        except AppError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from exc
        # No database session is held past this point: an idle socket costs only memory.
        await self.sio.enter_room(sid, room(user_id), namespace=NAMESPACE)

    def sockets(self) -> int:
        """Socket.io clients connected to this process (for /metrics)."""
        # Every client of a namespace is in its `None` room, from connect to disconnect.
        return len(self.sio.manager.rooms.get(NAMESPACE, {}).get(None, ()))

    def _local(self, user_id: int) -> bool:
        if self.redis:
            return True  # the relay emits for every process's sockets
        rooms = self.sio.manager.rooms.get(NAMESPACE, {})
        return bool(rooms.get(room(user_id)))

    async def dispatch(self, payloads: list[str]) -> None:
        """Emit committed events to this process's sockets of the users they name.

        Consecutive events of a kind that needs loading share one query; order per user
        is kept."""
        pending: tuple[events.Event, list[tuple[int, int | None]]] | None = None
        for payload in payloads:
            event, pairs = events.decode(payload)
            if pending is not None and pending[0] == event and event in _LOADED:
                pending[1].extend(pairs)
                continue
            if pending is not None:
                await self._dispatch(*pending)
            pending = (event, list(pairs))
        if pending is not None:
            await self._dispatch(*pending)

    async def _dispatch(self, event: events.Event, pairs: list[tuple[int, int | None]]) -> None:
        pairs = [(u, n) for u, n in pairs if self._local(u)]
        if not pairs or self._reader is None:
            return
        emits: list[Awaitable[None]] = []
        if event in _LOADED:
            ids = [n for _, n in pairs if n is not None]
            async with self._reader() as session:
                rows = await inbox_repository.by_ids(session, ids)
            for n, category in rows:
                item = NotificationRead.of(n, category)
                data = (
                    payloads.new_notification(item)
                    if event == "NEW_NOTIFICATION"
                    else payloads.item(item)
                )
                emits.append(self._emit(event, data, n.user_id))
        elif event in ("NOTIFICATION_SEEN", "NOTIFICATION_UNREAD_COUNT"):
            unread: dict[int, int] = {}
            async with self._reader() as session:
                for user_id in dict.fromkeys(u for u, _ in pairs):
                    unread[user_id] = await inbox_service.unread_count(session, user_id=user_id)
            if event == "NOTIFICATION_SEEN":
                emits = [self._emit(event, payloads.seen(n, unread[u]), u) for u, n in pairs]
            else:
                emits = [self._emit(event, payloads.unread_count(c), u) for u, c in unread.items()]
        elif event in ("NOTIFICATION_DELETED", "NOTIFICATION_READ"):
            emits = [self._emit(event, payloads.by_id(n), u) for u, n in pairs]
        else:
            emits = [self._emit(event, None, u) for u in dict.fromkeys(u for u, _ in pairs)]
        # Tasks start in order, so each socket still sees its events in order.
        await asyncio.gather(*emits)

    async def _emit(self, event: str, data: object, user_id: int) -> None:
        if data is None:
            await self.sio.emit(event, room=room(user_id), namespace=NAMESPACE)
        else:
            await self.sio.emit(event, data, room=room(user_id), namespace=NAMESPACE)
