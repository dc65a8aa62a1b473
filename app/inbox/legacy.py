"""The single-item shape @engagespot/core 1.3/1.4 read, and how to tell their requests apart.

`Notification.fetch()` (`GET /v3/notifications/{id}`) reads the item differently per version
(their published `dist` code):

- core 1.1.x: at the top level (`response.title`, `response.data` …);
- core 1.3.8 and 1.4.2: under `data` (`response.data.title`, `response.data.data` …);
- core 3.x (`notification.getById`): the body as it is, the top-level item.

The item has a `data` field of its own (its custom data), so no one body serves both 1.3/1.4
and 3.x. Their requests differ, though: 3.x sends every call through @engagespot/api-client,
which always adds `X-ENGAGESPOT-DEVICE-ID`; the 1.x request helper sends `Content-Type:
application/json` on every call and the device id only on `/sdk/connect`. 1.1.x and 1.3/1.4
send the same request, so the 1.x body serves both: the item at the top level, and under
`data` again with its own fields laid over its custom data.
"""

from collections.abc import Mapping
from typing import Any

from app.inbox.schemas import NotificationRead


def reads_item_under_data(headers: Mapping[str, str]) -> bool:
    """Whether a request comes from @engagespot/core 1.x's request helper."""
    if headers.get("x-engagespot-device-id"):
        return False
    content_type = headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "application/json"


def legacy_item(item: NotificationRead) -> dict[str, Any]:
    """The item for 1.1.x (top level) and 1.3/1.4 (under `data`) at once.

    1.3/1.4 read `data.data` as the custom data; 1.1.x reads `data` as the custom data and
    finds its keys there, next to the item's own (which win where names collide)."""
    body = item.model_dump(mode="json")
    custom = body["data"] if isinstance(body["data"], dict) else {}
    return {**body, "data": {**custom, **body}}
