"""Routing: app channels ∩ override ∩ sources' channels ∩ preferences, against the database."""

from sqlalchemy.ext.asyncio import AsyncSession

from app import routing
from app.categories import repository as categories_repository
from app.preferences import repository as preferences_repository
from app.users import repository as users_repository
from tests.factories import make_app


def test_override_narrows_the_apps_channels_in_the_apps_order() -> None:
    app_channels = ["inApp", "email", "webPush", "email"]
    assert routing.send_channels(app_channels, None) == ("inApp", "email", "webPush")
    assert routing.send_channels(app_channels, ["webPush", "sms", "inApp"]) == (
        "inApp",
        "webPush",
    )
    assert routing.send_channels(app_channels, []) == ()


def test_sources_combine_to_the_widest_reach() -> None:
    assert routing.reach_of(1, None) == routing.Reach(1)
    assert routing.reach_of(1, [["email"], []]) == routing.Reach(1)
    assert routing.reach_of(1, [["email"], ["sms", "email"]]) == routing.Reach(
        1, frozenset({"email", "sms"})
    )


async def test_route_applies_sources_and_preferences_per_user(session: AsyncSession) -> None:
    app, _ = await make_app(session)
    ids = await users_repository.ensure(session, app.id, ["ann", "bob", "cy"])
    category = await categories_repository.ensure(session, app.id, "billing")
    other = await categories_repository.ensure(session, app.id, "news")
    await preferences_repository.upsert(
        session,
        [
            # bob turned email off for billing, and inApp off for another category only.
            {
                "user_id": ids["bob"],
                "category_id": category.id,
                "channel": "email",
                "enabled": False,
            },
            {"user_id": ids["bob"], "category_id": other.id, "channel": "inApp", "enabled": False},
            # cy explicitly keeps inApp on.
            {"user_id": ids["cy"], "category_id": category.id, "channel": "inApp", "enabled": True},
        ],
    )
    reached = [
        routing.Reach(ids["ann"]),
        routing.Reach(ids["bob"]),
        routing.Reach(ids["cy"], frozenset({"inApp"})),  # a subscription naming inApp only
    ]

    routes = await routing.route(
        session, channels=("inApp", "email"), category_id=category.id, reached=reached
    )

    assert routes.pairs == (
        (ids["ann"], "inApp"),
        (ids["ann"], "email"),
        (ids["bob"], "inApp"),
        (ids["cy"], "inApp"),
    )
    assert routes.users("email") == [ids["ann"]]

    # Untagged: preferences do not apply, so bob gets email too.
    untagged = await routing.route(
        session, channels=("inApp", "email"), category_id=None, reached=reached
    )
    assert untagged.users("email") == [ids["ann"], ids["bob"]]
    assert await routing.route(session, channels=(), category_id=None, reached=reached) == (
        routing.Routes(())
    )
