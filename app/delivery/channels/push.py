"""What FCM, APNs and Expo share: the POST with its failure classes, deep merges of
provider overrides, and a cache of short-lived credentials that one refresh fills for every
attempt waiting on it."""

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.delivery.http import Answer, BlockedAddress, Client
from app.delivery.outcome import Outcome, Result


async def post(http: Client, url: str, body: bytes, headers: dict[str, str]) -> Answer | Outcome:
    """POST JSON; a failure before any answer is an Outcome (ambiguous once handed over)."""
    try:
        return await http.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )
    except BlockedAddress as exc:
        return Outcome(Result.CONFIG, str(exc), handed_over=False)
    except httpx.ConnectError as exc:
        return Outcome(Result.UNREACHABLE, f"cannot connect: {exc}", handed_over=False)
    except (httpx.HTTPError, TimeoutError) as exc:
        return Outcome(Result.TRANSIENT, f"{type(exc).__name__}: {exc}".strip())


def json_body(answer: Answer) -> Any:
    try:
        return json.loads(answer.body) if answer.body else None
    except ValueError:
        return None


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def stringified(data: dict[str, Any]) -> dict[str, str]:
    """FCM takes only string data values: others become their JSON text (7 → "7")."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        for k, v in data.items()
    }


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class Refused(Exception):
    """Getting a credential failed; `outcome` says how the attempt ends."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


Mint = Callable[[], Awaitable[tuple[str, float]]]


def kept_for(lifetime: float) -> float:
    """How long a credential valid for `lifetime` seconds is used: a little less (10 %, at
    most 5 minutes), since one expiring in flight costs a refused request."""
    return max(lifetime - min(300.0, lifetime / 10), 0.0)


class TokenCache:
    """Credentials by key (a fingerprint of the provider's secrets), each kept until shortly
    before it expires. Concurrent misses share one refresh; an answer that says the credential
    is no longer good drops it, once, for everyone."""

    def __init__(self, size: int = 1024) -> None:
        self._values: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Task[str]] = {}
        self._size = size
        self.refreshes = 0

    async def get(self, key: str, mint: Mint) -> str:
        """The cached credential for `key`, or a fresh one from `mint` (value, lifetime s);
        `mint` raises Refused when it cannot get one."""
        found = self._values.get(key)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        task = self._pending.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._refresh(key, mint))
            self._pending[key] = task
        # One waiter giving up (its attempt timed out) does not cancel the others' refresh.
        return await asyncio.shield(task)

    async def _refresh(self, key: str, mint: Mint) -> str:
        try:
            self.refreshes += 1
            value, lifetime = await mint()
            self._values[key] = (value, time.monotonic() + kept_for(lifetime))
            self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
            return value
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]

    def drop(self, key: str, value: str) -> None:
        """Forget `value` if it is still the cached one (a later refresh is kept)."""
        found = self._values.get(key)
        if found is not None and found[0] == value:
            del self._values[key]
