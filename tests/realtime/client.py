"""A socket.io client that records what the server emits, as @engagespot/core connects."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import socketio


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def record(self, event: str, data: Any = None) -> None:
        async with self._changed:
            self.events.append((event, data))
            self._changed.notify_all()

    async def wait_for(self, event: str, within: float = 10.0) -> Any:
        """Return the payload of the first `event` not yet taken."""

        def first() -> int | None:
            return next((i for i, (e, _) in enumerate(self.events) if e == event), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: first() is not None), within)
            index = first()
            assert index is not None
            return self.events.pop(index)[1]

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


@asynccontextmanager
async def connected(
    base: str,
    *,
    api_key: str,
    user_id: str,
    signature: str | None = None,
    token: str | None = None,
) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    client = socketio.AsyncClient(reconnection=False)
    client.on("*", recorder.record)
    # socket.io-client URL-encodes its query; base64 signatures carry `+`, `/` and `=`.
    query = urlencode(
        {"apiKey": api_key, "userId": user_id, "userSignature": signature or "undefined"}
    )
    await client.connect(
        f"{base}?{query}",
        transports=["websocket"],
        auth={"token": token} if token else None,
        wait_timeout=10,
    )
    try:
        yield recorder
    finally:
        await client.disconnect()


async def refused(base: str, *, query: str, token: str | None = None) -> str:
    """Try to connect; return the server's refusal message (fails if it connects)."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[str] = []

    async def on_error(data: object) -> None:
        reasons.append(str(data.get("message") if isinstance(data, dict) else data))

    client.on("connect_error", on_error)
    try:
        await client.connect(
            f"{base}?{query}",
            transports=["websocket"],
            auth={"token": token} if token else None,
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        assert reasons, "refused without a reason"
        return reasons[0]
    await client.disconnect()
    raise AssertionError("the connection was accepted")
