from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from app.auth.dependencies import Sender
from app.config import Settings
from app.db import unit_of_work
from app.delivery import crypto
from app.errors import answers
from app.kit import parts
from app.kit.access import SEND_REQUEST_ID
from app.routing import IN_APP
from app.sends import accept, idempotency
from app.sends.group import GroupCommit, Send
from app.sends.schemas import SendAccepted, SendHeaders, SendRequest

router = APIRouter(tags=["notifications"])


# The hot route of the API, so it declares little: each parameter and dependency is FastAPI
# work on every request. The body and the header are read here (kit.parts), and documented
# by openapi_extra. Its unit of work is opened here rather than by SessionDep, and only when
# needed: a plain send reads nothing (its app comes from the cache) and its group writes it.
@router.post(
    "/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SendAccepted,
    # 409: a retry while the first is in flight; 422: the key with another body.
    responses=answers(409, 422),
    openapi_extra={
        "parameters": parts.parameters(SendHeaders, "header"),
        **parts.json_body(SendRequest),
    },
)
async def send_notification(
    request: Request,
    raw: Annotated[parts.Body, Depends(parts.decoded)],
    principal: Sender,
) -> JSONResponse:
    """Send a notification to recipients and topics (now, or at `sendAt`).

    Inbox rows for up to `HERALD_INLINE_RECIPIENTS` explicit recipients exist when this
    answers 202; larger audiences and topics are written by the worker. With an
    `Idempotency-Key`, a retry within 24 h gets the first answer and sends nothing twice."""
    headers, body = parts.validated(request, raw, header_model=SendHeaders, body_model=SendRequest)
    idempotency_key = headers.key
    settings: Settings = request.app.state.settings
    app = principal.app
    limits = accept.Limits(
        max_recipients=settings.max_recipients, inline_recipients=settings.inline_recipients
    )
    keyring = _keyring(request, settings)
    web_push = settings.vapid_subject is not None
    maker = request.app.state.sessionmaker
    if idempotency_key is None:
        send: Send | None
        if all(c == IN_APP for c in app.channels):
            send = await accept.plain(
                None, app=app, body=body, limits=limits, keyring=keyring, web_push=web_push
            )
        else:
            # Its channels are read first; that session ends before the group is written.
            async with unit_of_work(maker) as session:
                send = await accept.plain(
                    session, app=app, body=body, limits=limits, keyring=keyring, web_push=web_push
                )
        if send is not None:
            await _group(request).write(send)
            return _accepted(request, str(send.request_id))
    # The commit happens before the answer is made, so a failed one is never a 202.
    async with unit_of_work(maker) as session:
        if idempotency_key is not None:
            earlier = await idempotency.claim(
                session, app_id=app.id, key=idempotency_key, body=body.model_dump(mode="json")
            )
            if earlier is not None:
                return _accepted(request, str(earlier))
        request_id = await accept.accept(
            session, app=app, body=body, limits=limits, keyring=keyring, web_push=web_push
        )
        if idempotency_key is not None:
            await idempotency.remember(
                session, app_id=app.id, key=idempotency_key, request_id=request_id
            )
    return _accepted(request, str(request_id))


def _accepted(request: Request, request_id: str) -> JSONResponse:
    setattr(request.state, SEND_REQUEST_ID, request_id)
    # Made here: FastAPI's validation and serialization of a returned model cost more.
    return JSONResponse({"requestId": request_id}, status_code=status.HTTP_202_ACCEPTED)


def _group(request: Request) -> GroupCommit:
    """The app's group commit for plain sends, made on first use."""
    state = request.app.state
    group: GroupCommit | None = getattr(state, "send_group", None)
    if group is None:
        # The session factory is read at each group: tests swap it per test.
        group = state.send_group = GroupCommit(
            lambda: state.sessionmaker, committed=state.metrics.grouped
        )
    return group


def _keyring(request: Request, settings: Settings) -> crypto.Keyring:
    """crypto.keyring(settings), kept for the settings in use: it resolves the data
    directory's path, a tenth of a plain send's CPU when done for every send."""
    state = request.app.state
    cached: tuple[Settings, crypto.Keyring] | None = getattr(state, "send_keyring", None)
    if cached is None or cached[0] is not settings:
        cached = state.send_keyring = (settings, crypto.keyring(settings))
    return cached[1]
