from pydantic import BaseModel, ConfigDict, Field

from app.kit.types import Channel, DbId, Flag


class ChannelPreference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    channel: Channel
    enabled: Flag


class CategoryPreference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    categoryId: DbId
    channels: list[ChannelPreference] = Field(max_length=20)


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    preference: list[CategoryPreference] = Field(max_length=500)


class CategorySummary(BaseModel):
    id: int
    name: str
    identifier: str


class PreferenceRead(BaseModel):
    category: CategorySummary
    channelPreferences: list[ChannelPreference]
