"""Which user gets which channel, decided in one place for inline sends and fan-out alike.

A send reaches a user on a channel when the channel is enabled for the app, allowed by the
send's `override.channels`, allowed by every source that reached the user (a topic
subscription's `channels`; an explicit recipient allows all), and not turned off in the
user's preferences for the send's category."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.preferences import repository as preferences_repository

IN_APP = "inApp"


@dataclass(frozen=True, slots=True)
class Reach:
    """A user a send reaches, and the channels its sources allow (None: every channel)."""

    user_id: int
    channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Routes:
    """The (user, channel) pairs of a send, in user order."""

    pairs: tuple[tuple[int, str], ...]

    def users(self, channel: str) -> list[int]:
        return [user_id for user_id, c in self.pairs if c == channel]


def send_channels(app_channels: Iterable[str], override: Sequence[str] | None) -> tuple[str, ...]:
    """The channels a send may use at all: the app's, narrowed by `override.channels`."""
    enabled = tuple(dict.fromkeys(app_channels))
    if override is None:
        return enabled
    allowed = set(override)
    return tuple(c for c in enabled if c in allowed)


def reach_of(user_id: int, channel_lists: Sequence[Sequence[str]] | None) -> Reach:
    """Combine the sources that reached a user (None: one allows every channel): any source
    allowing every channel wins, else the union of what they name. An empty list names every
    channel."""
    if channel_lists is None:
        return Reach(user_id)
    named: set[str] = set()
    for channels in channel_lists:
        if not channels:
            return Reach(user_id)
        named.update(channels)
    return Reach(user_id, frozenset(named))


async def route(
    session: AsyncSession,
    *,
    channels: Sequence[str],
    category_id: int | None,
    reached: Sequence[Reach],
) -> Routes:
    """Route each reached user to the send's channels their sources and preferences allow.

    An untagged send skips preferences, as Engagespot documents."""
    if not channels or not reached:
        return Routes(())
    turned_off: set[tuple[int, str]] = set()
    if category_id is not None:
        turned_off = await preferences_repository.turned_off(
            session,
            category_id=category_id,
            user_ids=[r.user_id for r in reached],
            channels=channels,
        )
    pairs = tuple(
        (r.user_id, channel)
        for r in reached
        for channel in channels
        if (r.channels is None or channel in r.channels) and (r.user_id, channel) not in turned_off
    )
    return Routes(pairs)
