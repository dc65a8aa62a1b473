"""Every ORM model, imported once so Alembic and the app see the whole schema."""

from app.apps.models import App
from app.auth.models import AdminTokenRecord
from app.categories.models import Category
from app.db import Base
from app.devices.models import Device
from app.inbox.models import InboxCounter, Notification
from app.preferences.models import Preference
from app.sends.models import IdempotencyKey, NotificationRequest
from app.topics.models import Topic, TopicSubscription
from app.users.models import User

__all__ = [
    "AdminTokenRecord",
    "App",
    "Base",
    "Category",
    "Device",
    "IdempotencyKey",
    "InboxCounter",
    "Notification",
    "NotificationRequest",
    "Preference",
    "Topic",
    "TopicSubscription",
    "User",
]
