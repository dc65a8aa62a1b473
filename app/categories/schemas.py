from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.categories.models import Category
from app.kit.timefmt import iso

IDENTIFIER = r"^[A-Za-z0-9_.:\-]+$"


class CategoryCreate(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"identifier": "billing", "name": "Billing"}]},
    )

    identifier: str = Field(min_length=1, max_length=255, pattern=IDENTIFIER)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    hideInInApp: StrictBool = False
    hideInPreferenceManager: StrictBool = False


class CategoryUpdate(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"name": "Invoices", "hideInInApp": False}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=255)
    hideInInApp: StrictBool | None = None
    hideInPreferenceManager: StrictBool | None = None


class CategoryRead(BaseModel):
    id: int
    name: str
    identifier: str
    hideInInApp: bool
    hideInPreferenceManager: bool
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, category: Category) -> "CategoryRead":
        return cls(
            id=category.id,
            name=category.name,
            identifier=category.identifier,
            hideInInApp=category.hide_in_in_app,
            hideInPreferenceManager=category.hide_in_preference_manager,
            createdAt=iso(category.created_at),
            updatedAt=iso(category.updated_at),
        )


class CategoryRef(BaseModel):
    """The category as embedded in an inbox item (id is a string there)."""

    id: str
    identifier: str
    name: str
