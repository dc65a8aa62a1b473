from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.convertors import StringConvertor, register_url_convertor

from app.auth.dependencies import InboxActor, InboxReader, InboxUser, PushClicker
from app.db import SessionDep
from app.inbox import service
from app.inbox.legacy import legacy_item, reads_item_under_data
from app.inbox.schemas import Done, InboxPage, InboxQuery, NotificationRead, StateChange
from app.kit import parts
from app.kit.bodies import optional_object, truthy
from app.kit.timefmt import utcnow
from app.kit.types import DbId

router = APIRouter(tags=["notifications"])


class _ItemConvertor(StringConvertor):
    """An item's id in a path: anything but the names of the bulk routes beside it, so GET or
    DELETE on `markAllNotificationsAs*` (POST only) answer 405 with `Allow: POST`, not a 400
    about an id. Validation (a 400 for `abc`) stays with the route's DbId."""

    regex = "(?!markAllNotificationsAs)[^/]+"


register_url_convertor("item", _ItemConvertor())

Limit = Annotated[int, Query(ge=1, le=100)]


@router.get(
    "/notifications",
    response_model=InboxPage,
    openapi_extra={"parameters": parts.parameters(InboxQuery, "query")},
)
async def list_notifications(request: Request, principal: InboxReader) -> Response:
    """List the user's inbox, newest first (backends pass `userIdentifier`)."""
    # The query is read here, as one model (kit.parts). The body comes ready-made
    # (page_body): FastAPI sends a Response as it is, so the page pays for no model
    # validation or serialisation; response_model still documents it.
    q = parts.query(request, InboxQuery)
    body = await service.page(
        request.app.state.sessionmaker,
        getattr(request.app.state, "read_pool", None),
        app_id=principal.app.id,
        identifier=principal.user_identifier,
        page_no=q.pageNo,
        limit=q.limit,
        state_filter=q.filter,
        category=q.category,
        tenant=q.tenantIdentifier,
    )
    return Response(body, media_type="application/json")


@router.post("/notifications/markAllNotificationsAsSeen", response_model=Done)
async def mark_all_seen(
    session: SessionDep,
    principal: InboxUser,
    page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    page_no: Annotated[int | None, Query(alias="pageNo", ge=1, le=1_000_000)] = None,
    limit: Limit = 15,
) -> Done:
    """Mark one inbox page (default: the newest 15) as seen; the page goes in `page` or `pageNo`."""
    n = await service.mark_page_seen(
        session,
        app_id=principal.app.id,
        identifier=principal.user_identifier,
        page_no=page or page_no or 1,
        limit=limit,
    )
    return Done(message=f"{n} notifications marked as seen")


@router.post("/notifications/markAllNotificationsAsRead", response_model=Done)
async def mark_all_read(session: SessionDep, principal: InboxUser) -> Done:
    """Mark every notification in the inbox as read (clicked)."""
    n = await service.mark_all(
        session,
        app_id=principal.app.id,
        identifier=principal.user_identifier,
        values=service.clicked_now(),
        event="ALL_NOTIFICATION_READ",
    )
    return Done(message=f"{n} notifications marked as read")


@router.post("/notifications/markAllNotificationsAsDeleted", response_model=Done)
async def mark_all_deleted(session: SessionDep, principal: InboxUser) -> Done:
    """Delete every notification in the inbox."""
    n = await service.mark_all(
        session,
        app_id=principal.app.id,
        identifier=principal.user_identifier,
        values={"deleted_at": utcnow()},
        event="ALL_NOTIFICATION_DELETED",
    )
    return Done(message=f"{n} notifications deleted")


@router.get("/notifications/{notification_id:item}", response_model=NotificationRead)
async def get_notification(
    request: Request, session: SessionDep, principal: InboxActor, notification_id: DbId
) -> NotificationRead | JSONResponse:
    """Read one notification; this also marks it seen."""
    item = await service.mark(
        session, principal, notification_id, service.seen_now(), "NOTIFICATION_SEEN"
    )
    if principal.user_identifier is not None and reads_item_under_data(request.headers):
        return JSONResponse(legacy_item(item))
    return item


@router.delete("/notifications/{notification_id:item}", response_model=Done)
async def delete_notification(
    session: SessionDep, principal: InboxActor, notification_id: DbId
) -> Done:
    """Delete one notification from the inbox."""
    await service.touch(
        session, principal, notification_id, {"deleted_at": utcnow()}, "NOTIFICATION_DELETED"
    )
    return Done(message="Notification deleted successfully")


@router.post("/notifications/{notification_id}/click", response_model=NotificationRead)
@router.patch("/notifications/{notification_id}/click", response_model=NotificationRead)
async def click_notification(
    request: Request, session: SessionDep, principal: PushClicker, notification_id: DbId
) -> NotificationRead:
    """Mark a notification read (clicked); `{"read": false}` marks it unread again. The
    web-push service worker's signed click is accepted here in secure mode too."""
    body = await optional_object(request)
    if truthy(body.get("read")):
        return await service.mark(
            session, principal, notification_id, service.clicked_now(), "NOTIFICATION_READ"
        )
    return await service.mark(
        session, principal, notification_id, {"clicked_at": None}, "NOTIFICATION_SEEN"
    )


@router.post("/notifications/{notification_id}/views", response_model=NotificationRead)
async def view_notification(
    session: SessionDep, principal: InboxActor, notification_id: DbId
) -> NotificationRead:
    """Mark a notification seen."""
    return await service.mark(
        session, principal, notification_id, service.seen_now(), "NOTIFICATION_SEEN"
    )


@router.delete("/notifications/{notification_id}/views", response_model=NotificationRead)
async def unview_notification(
    session: SessionDep, principal: InboxActor, notification_id: DbId
) -> NotificationRead:
    """Mark a notification unseen."""
    return await service.mark(
        session, principal, notification_id, {"seen_at": None}, "NOTIFICATION_SEEN"
    )


@router.delete("/notifications/{notification_id}/reads", response_model=NotificationRead)
async def unread_notification(
    session: SessionDep, principal: InboxActor, notification_id: DbId
) -> NotificationRead:
    """Mark a notification unread (not clicked)."""
    return await service.mark(
        session, principal, notification_id, {"clicked_at": None}, "NOTIFICATION_SEEN"
    )


@router.put("/notifications/{notification_id}/state", response_model=NotificationRead)
async def set_state(
    session: SessionDep, principal: InboxActor, notification_id: DbId, body: StateChange
) -> NotificationRead:
    """Set a notification's state: unread, seen, clicked, or a custom state from its blocks."""
    values = service.state_values(body, utcnow())
    if body.delete:
        # A deleted item leaves the inbox: answer with it as it was, in its new state.
        before = await service.read_one(session, principal, notification_id)
        await service.touch(session, principal, notification_id, values, "NOTIFICATION_DELETED")
        return before.model_copy(update={"state": body.state})
    return await service.mark(
        session, principal, notification_id, values, "NOTIFICATION_INTERACTED"
    )
