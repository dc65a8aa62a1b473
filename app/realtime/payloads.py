"""What each socket event carries: payloads every @engagespot/core from 1.3 to 3.0 can read.

One emit reaches every socket of a user, whatever SDK opened it, so each payload holds the keys
of every version side by side. What the published builds read (their `dist` code):

- `NEW_NOTIFICATION`: 3.0.1 takes `notification` as it is; 1.3.8/1.4.2 build the item from
  `notification.{id,title,description,icon,data,url,created_at,blocks}` (no `message`, no
  `createdAt`: the React components 1.x/2.x show "date error" without `created_at`).
- `NOTIFICATION_SEEN`: 3.0.1 reads `unreadNotificationCount`; 1.3.8/1.4.2 read
  `notification.id` and throw without it, so it is emitted per item.
- `NOTIFICATION_UNREAD_COUNT`: 1.3.8/1.4.2 take it as "all seen" (badge to 0) and read no
  payload; 3.0.1 ignores it. The Flutter SDK takes it as "all read".
- `NOTIFICATION_INTERACTED`: every version reads the item itself (1.x its `id`, merged in).
- `NOTIFICATION_READ`, `NOTIFICATION_DELETED`: every version reads `id`; 1.x compares it with
  `===` to the listed items' ids, so it stays a number.
"""

from typing import Any

from app.inbox.schemas import NotificationRead


def item(notification: NotificationRead) -> dict[str, Any]:
    """An inbox item with the 1.x key names (`description`, `created_at`) beside the current."""
    body = notification.model_dump(mode="json")
    body["description"] = body["message"]
    body["created_at"] = body["createdAt"]
    return body


def new_notification(notification: NotificationRead) -> dict[str, Any]:
    return {"notification": item(notification)}


def seen(notification_id: int | None, unread: int) -> dict[str, Any]:
    """One item seen (or unseen): the user's new unseen count, and which item for 1.x.

    Without an id (an older message still in flight) only 3.x can read it."""
    payload: dict[str, Any] = {"unreadNotificationCount": unread}
    if notification_id is not None:
        payload["notification"] = {"id": notification_id}
    return payload


def unread_count(unread: int) -> dict[str, Any]:
    return {"unreadNotificationCount": unread}


def by_id(notification_id: int | None) -> dict[str, Any]:
    return {"id": notification_id}
