"""Targets: several per user and channel (push tokens, web-push subscriptions), each bound to
a provider kind where it must be, and forgotten when a provider says it is dead."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import addresses, catalogue, targets
from app.delivery.models import Delivery, DeliveryStatus
from app.devices import repository as devices_repository
from app.users import repository as users_repository
from app.users.models import User
from tests.factories import make_app


def test_push_tokens_are_read_per_enabled_provider_kind() -> None:
    profile = {
        "fcm": {"tokens": ["f1", "f2", "f1", 7]},
        "apns": {"tokens": ["a1"]},
        "expo": {"tokens": "not a list"},
    }
    found = addresses.addresses(
        catalogue.MOBILE_PUSH, profile, provider_has_url=False, provider_kinds={"fcm", "expo"}
    )
    assert [(a.target, a.provider_kind, a.target_key) for a in found] == [
        ("f1", "fcm", "fcm:f1"),
        ("f2", "fcm", "fcm:f2"),
    ]
    none = addresses.addresses(
        catalogue.MOBILE_PUSH, {}, provider_has_url=False, provider_kinds={"fcm", "apns"}
    )
    assert [a.target for a in none] == [None]
    assert none[0].reason == "no push token in the profile (`fcm.tokens`, `apns.tokens`)"


def test_every_subscription_is_a_target_keyed_by_its_endpoint() -> None:
    sub = {"endpoint": "https://push.example/a", "keys": {"p256dh": "k", "auth": "s"}}
    found = addresses.addresses(
        catalogue.WEB_PUSH,
        {},
        provider_has_url=False,
        subscriptions=[sub, dict(sub), {"endpoint": "http://insecure.example/b"}],
    )
    assert [a.target_key for a in found] == ["https://push.example/a"]
    assert found[0].target is not None
    assert '"p256dh":"k"' in found[0].target
    [missing] = addresses.addresses(catalogue.WEB_PUSH, {}, provider_has_url=False)
    assert missing.target is None
    assert missing.reason is not None


def test_phone_numbers_must_be_e164() -> None:
    assert addresses.phone({"phoneNumber": " +14155550100 "}).target == "+14155550100"
    for bad in ("4155550100", "+0123456789", "+1 415 555 0100", 14155550100):
        found = addresses.phone({"phoneNumber": bad})
        assert found.target is None
        assert found.reason is not None
        assert found.reason.startswith("invalid phone number")
    assert addresses.phone({}).reason is not None


def _delivery(user_id: int, channel: str, **fields: Any) -> Delivery:
    return Delivery(id=1, user_id=user_id, channel=channel, request_id=uuid.uuid4(), **fields)


async def test_a_dead_token_leaves_the_profile_and_nothing_else(session: AsyncSession) -> None:
    app, _ = await make_app(session)
    ids = await users_repository.ensure(session, app.id, ["ann", "bob"])
    profile = {"fcm": {"tokens": ["dead", "live"]}, "expo": {"tokens": ["dead"]}}
    await users_repository.upsert_profiles(session, app.id, {"ann": profile, "bob": profile})

    done = await targets.forget(
        session,
        _delivery(ids["ann"], catalogue.MOBILE_PUSH, provider_kind="fcm", target="dead"),
    )

    assert done == "token removed from `fcm.tokens`"
    ann = await session.get(User, ids["ann"], populate_existing=True)
    bob = await session.get(User, ids["bob"], populate_existing=True)
    assert ann is not None
    assert bob is not None
    assert ann.profile["fcm"]["tokens"] == ["live"]
    assert ann.profile["expo"]["tokens"] == ["dead"]  # another kind's token is another token
    assert bob.profile == profile
    again = await targets.forget(
        session,
        _delivery(ids["ann"], catalogue.MOBILE_PUSH, provider_kind="fcm", target="dead"),
    )
    assert again == "token already removed"


async def test_a_gone_subscription_is_dropped_from_its_device_only(session: AsyncSession) -> None:
    app, _ = await make_app(session)
    ids = await users_repository.ensure(session, app.id, ["ann"])
    gone = {"endpoint": "https://push.example/gone", "keys": {"p256dh": "k", "auth": "s"}}
    live = {"endpoint": "https://push.example/live", "keys": {"p256dh": "k", "auth": "s"}}
    for device, sub in (("d1", gone), ("d2", live)):
        await devices_repository.register(
            session, user_id=ids["ann"], device_identifier=device, web_push_subscription=sub
        )

    done = await targets.forget(
        session,
        _delivery(
            ids["ann"], catalogue.WEB_PUSH, target_key=gone["endpoint"], status=DeliveryStatus.SENT
        ),
    )

    assert done == "subscription removed"
    left = await devices_repository.subscriptions_of(session, [ids["ann"]])
    assert left == {ids["ann"]: [live]}
