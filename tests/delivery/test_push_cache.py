"""The credential cache FCM access tokens and APNs provider tokens live in: one refresh for
every attempt waiting, kept until shortly before expiry, dropped once when refused."""

import asyncio

import pytest

from app.delivery.channels import apns, push
from app.delivery.outcome import Outcome, Result


def test_credentials_are_used_until_shortly_before_they_expire() -> None:
    assert push.kept_for(3599) == 3299  # an FCM access token: 5 minutes early
    assert push.kept_for(2) == pytest.approx(1.8)
    # An APNs provider token: refreshed after 40 minutes (Apple: between 20 and 60).
    assert push.kept_for(apns.LIFETIME) == pytest.approx(40 * 60)


async def test_concurrent_misses_share_one_refresh_and_a_refusal_drops_it_once() -> None:
    cache = push.TokenCache()
    release = asyncio.Event()
    minted: list[str] = []

    async def mint() -> tuple[str, float]:
        await release.wait()
        minted.append(f"token-{len(minted)}")
        return minted[-1], 3600.0

    waiting = [asyncio.create_task(cache.get("account", mint)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["token-0"] * 20
    assert minted == ["token-0"]

    # Twenty attempts refused with token-0 drop it once: one new token for all of them.
    for _ in range(20):
        cache.drop("account", "token-0")
    again = await asyncio.gather(*(cache.get("account", mint) for _ in range(20)))
    assert again == ["token-1"] * 20
    cache.drop("account", "token-0")  # a late refusal of the old token keeps the new one
    assert await cache.get("account", mint) == "token-1"
    assert minted == ["token-0", "token-1"]


async def test_a_failed_refresh_fails_its_waiters_and_the_next_miss_tries_again() -> None:
    cache = push.TokenCache()
    calls = 0

    async def mint() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise push.Refused(Outcome(Result.TRANSIENT, "token endpoint: 503"))
        return "fresh", 60.0

    first = await asyncio.gather(*(cache.get("k", mint) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(e, push.Refused) for e in first)
    assert calls == 1
    assert await cache.get("k", mint) == "fresh"
    assert calls == 2
