"""Rules for preferences: explicit rules only; anything unset is enabled."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.categories import repository as categories_repository
from app.errors import NotFound
from app.preferences import repository
from app.preferences.schemas import (
    CategorySummary,
    ChannelPreference,
    PreferenceRead,
    PreferencesUpdate,
)
from app.users import repository as users_repository
from app.users import service as users_service


async def read(session: AsyncSession, *, app_id: int, identifier: str) -> list[PreferenceRead]:
    user_id = await users_repository.id_of(session, app_id, identifier)
    if user_id is None:
        return []
    grouped: dict[int, PreferenceRead] = {}
    for category, channel, enabled in await repository.rules_of(session, user_id):
        item = grouped.get(category.id)
        if item is None:
            item = grouped[category.id] = PreferenceRead(
                category=CategorySummary(
                    id=category.id, name=category.name, identifier=category.identifier
                ),
                channelPreferences=[],
            )
        item.channelPreferences.append(
            ChannelPreference.model_validate({"channel": channel, "enabled": enabled})
        )
    return list(grouped.values())


async def update(
    session: AsyncSession, *, app_id: int, identifier: str, body: PreferencesUpdate
) -> list[PreferenceRead]:
    wanted = {p.categoryId for p in body.preference}
    known = await categories_repository.known_ids(session, app_id, wanted)
    if missing := sorted(wanted - known):
        raise NotFound(f"Unknown categoryId: {', '.join(map(str, missing))}")
    user = await users_service.locked(session, app_id=app_id, identifier=identifier)
    rows: dict[tuple[int, str], dict[str, object]] = {}
    for pref in body.preference:
        for ch in pref.channels:
            rows[(pref.categoryId, ch.channel)] = {
                "user_id": user.id,
                "category_id": pref.categoryId,
                "channel": ch.channel,
                "enabled": ch.enabled,
            }
    await repository.upsert(session, list(rows.values()))
    return await read(session, app_id=app_id, identifier=identifier)
