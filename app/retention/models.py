"""Indexes the purge walks: created_at, oldest first, on the tables it trims.

They belong to retention, so they are declared here, on the tables of the notifications
domain (imported by app.models, so Alembic sees them)."""

from sqlalchemy import Index

from app.notifications.models import Notification, NotificationRequest

notifications_created_at = Index("ix_notifications_created_at", Notification.__table__.c.created_at)
requests_created_at = Index(
    "ix_notification_requests_created_at", NotificationRequest.__table__.c.created_at
)
