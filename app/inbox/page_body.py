"""The inbox page's JSON body, written straight from the listing's rows.

The page is the hottest route Herald has. Building pydantic models for it, then having
FastAPI validate and serialise them, cost more CPU than the statement that reads the rows.
Here the rows become plain dicts, in the field order of `InboxPage` and `NotificationRead`,
and pydantic-core's own serialiser (the one FastAPI used for the models) writes them: the
same bytes, without the model layer. tests/inbox/test_page_body.py holds both to that."""

from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json

from app.kit.timefmt import iso


def item(row: Sequence[Any]) -> dict[str, Any]:
    """An item of `repository.ITEM_COLUMNS`, as NotificationRead serialises it."""
    (nid, title, message, icon, url, data, blocks, created, seen, clicked, state) = row[:11]
    category_id = row[11]
    return {
        "id": nid,
        "title": title,
        "message": message,
        "icon": icon,
        "url": url,
        "data": data,
        "category": {"id": str(category_id), "identifier": row[12], "name": row[13]}
        if category_id is not None
        else None,
        "blocks": blocks or [],
        "createdAt": iso(created),
        "seenAt": iso(seen),
        "clickedAt": iso(clicked),
        "state": state or ("clicked" if clicked else "seen" if seen else "unread"),
    }


def page(
    *, unread: int, total: int, page_no: int, limit: int, items: Sequence[Sequence[Any]]
) -> bytes:
    """The whole page, as InboxPage serialises it."""
    return to_json(
        {
            "unreadCount": unread,
            "pagination": {
                "totalCount": total,
                "pageNo": page_no,
                "limit": limit,
                "totalPages": -(-total // limit),
            },
            "data": [item(row) for row in items],
        }
    )
